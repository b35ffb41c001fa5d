from pathlib import Path

import pandas as pd
import pytest

from geotriplet_assets.paths import atomic_path, read_parquet_artefact, write_parquet_atomic


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "artefact.txt"
    with atomic_path(target) as temporary:
        temporary.write_text("first")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["artefact.txt"]


def test_parquet_artefacts_round_trip_and_name_their_producer(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_parquet_atomic(frame, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_parquet_artefact(tmp_path / "t.parquet", "t"), frame)
    with pytest.raises(FileNotFoundError, match="materialise targets first"):
        read_parquet_artefact(tmp_path / "missing.parquet", "targets")
