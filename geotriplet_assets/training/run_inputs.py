"""Whether a training folder's last checkpoint belongs to the same inputs as a new run.

A run interrupted with the same data, parameters and settings resumes from its last
checkpoint; a run over changed inputs (a new region, other parameters), or after a run of the
same inputs that finished, starts afresh (so a rerun reproduces the finished run's figures
instead of training past its early stop).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from geotriplet_assets.paths import atomic_path
from geotriplet_assets.training.params import HeadParams, TrainingSettings
from geotriplet_assets.training.split_data import TrainingData

INPUTS_FILE = "inputs.json"
HASH_BLOCK_ROWS = 65536


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
        for start in range(0, len(split.embeddings), HASH_BLOCK_ROWS):
            digest.update(np.ascontiguousarray(split.embeddings[start : start + HASH_BLOCK_ROWS]))
    return digest.hexdigest()


def same_inputs_as_before(output_dir: Path, fingerprint: str) -> bool:
    """True when OUTPUT_DIR was last used for inputs with this FINGERPRINT by a run that did
    not finish: the one to resume."""
    path = output_dir / INPUTS_FILE
    if not path.is_file():
        return False
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return record.get("fingerprint") == fingerprint and not record.get("finished", False)


def record_inputs(output_dir: Path, fingerprint: str, *, finished: bool = False) -> None:
    """Record that OUTPUT_DIR holds a run of FINGERPRINT's inputs (FINISHED once it has)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(output_dir / INPUTS_FILE) as temporary:
        temporary.write_text(json.dumps({"fingerprint": fingerprint, "finished": finished}))
