"""Whether a training folder's last checkpoint belongs to the same inputs as a new run.

A run interrupted with the same data, parameters and settings resumes from its last
checkpoint; a run over changed inputs (a new region, other parameters) starts afresh.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from geotriplet_assets.paths import atomic_path
from geotriplet_assets.training.params import HeadParams, TrainingSettings
from geotriplet_assets.training.split_data import TrainingData

INPUTS_FILE = "inputs.json"


def training_inputs_fingerprint(
    data: TrainingData, params: HeadParams, settings: TrainingSettings
) -> str:
    digest = hashlib.blake2b(digest_size=20)
    described = {
        "params": dataclasses.asdict(params),
        "settings": dataclasses.asdict(settings),
        "source": data.source,
        "model": data.model_name,
    }
    digest.update(json.dumps(described, sort_keys=True, default=str).encode())
    for split in (data.train, data.val, data.test):
        digest.update("\n".join(map(str, split.image_ids)).encode())
        digest.update(split.embeddings.tobytes())
    return digest.hexdigest()


def same_inputs_as_before(output_dir: Path, fingerprint: str) -> bool:
    """True when OUTPUT_DIR was last used for inputs with this FINGERPRINT."""
    path = output_dir / INPUTS_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("fingerprint") == fingerprint
    except (OSError, json.JSONDecodeError):
        return False


def record_inputs(output_dir: Path, fingerprint: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(output_dir / INPUTS_FILE) as temporary:
        temporary.write_text(json.dumps({"fingerprint": fingerprint}))
