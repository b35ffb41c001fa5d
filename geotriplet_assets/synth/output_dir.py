"""The synth output folder: atomic file writes, the manifest, and refusing foreign folders.

Layout: ``<out>/<DatasetID>/<DatasetID>_<TargetID>_<PatchID>_<view>.{jpg,txt}`` plus
``<out>/synth_manifest.json``, written last. ``<out>/.synth_incomplete`` is written first and
removed after the manifest, so an interrupted generation is recognisable. Generating into a
previous synth output (complete or not) deletes its files first, so the result is a clean
overwrite; a folder with anything else in it, or without either marker, is refused.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

MANIFEST_NAME = "synth_manifest.json"
INCOMPLETE_NAME = ".synth_incomplete"
DATASET_DIR = re.compile(r"\d{4}")
IMAGE_FILE = re.compile(r"\d{4}_\d{7}_\d{7}_\d+\.(jpg|txt)")
TEMP_FILE = re.compile(r"\..+\.tmp-\d+")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write data to a temporary name beside path, then rename it into place."""
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_bytes(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _foreign_entry(out_dir: Path) -> Path | None:
    """First entry of out_dir that a synth generation would not have written, if any."""
    for entry in sorted(out_dir.iterdir()):
        name = entry.name
        if entry.is_file() and (
            name in (MANIFEST_NAME, INCOMPLETE_NAME) or TEMP_FILE.fullmatch(name)
        ):
            continue
        if not (entry.is_dir() and DATASET_DIR.fullmatch(name)):
            return entry
        for inner in sorted(entry.iterdir()):
            if not inner.is_file() or not (
                IMAGE_FILE.fullmatch(inner.name) or TEMP_FILE.fullmatch(inner.name)
            ):
                return inner
    return None


def _refuse(out_dir: Path, reason: str) -> FileExistsError:
    return FileExistsError(
        f"refusing to write synthetic images into {out_dir}: it is not empty and does not "
        f"look like a previous synth output ({reason}); choose an empty or new folder"
    )


def prepare_output_dir(out_dir: Path) -> None:
    """Create out_dir, or empty a previous synth output; refuse anything else.

    On return out_dir holds only the incomplete-generation marker.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"synth output {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    foreign = _foreign_entry(out_dir)
    if foreign is not None:
        raise _refuse(out_dir, f"{foreign} was not written by the generator")
    markers = [out_dir / MANIFEST_NAME, out_dir / INCOMPLETE_NAME]
    if any(out_dir.iterdir()) and not any(marker.is_file() for marker in markers):
        raise _refuse(out_dir, f"neither {MANIFEST_NAME} nor {INCOMPLETE_NAME} is there")
    atomic_write_bytes(out_dir / INCOMPLETE_NAME, b"generation in progress\n")
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for entry in sorted(out_dir.iterdir()):
        if entry.name == INCOMPLETE_NAME:
            continue
        if entry.is_dir():
            for inner in entry.iterdir():
                inner.unlink()
            entry.rmdir()
        else:
            entry.unlink()


def write_manifest(out_dir: Path, content: dict[str, Any]) -> None:
    """Write the manifest atomically, then drop the incomplete marker: generation complete."""
    text = json.dumps(content, indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(out_dir / MANIFEST_NAME, text.encode("utf-8"))
    (out_dir / INCOMPLETE_NAME).unlink(missing_ok=True)


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete generation, or None when absent."""
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    content: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return content
