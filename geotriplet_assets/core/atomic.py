"""Write artefacts under a temporary name and rename them into place only when complete."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of PATH; on success it replaces PATH, on error it vanishes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_parquet_atomic(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)


def read_parquet_artefact(path: Path, producer: str) -> pd.DataFrame:
    """Read a parquet artefact; a missing file names the asset that writes it."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: materialise {producer} first")
    return pd.read_parquet(path)
