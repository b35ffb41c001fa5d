from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.features.embedding_store import (
    SCHEMA_VERSION,
    EmbeddingShardError,
    content_sha256,
    read_embedding_shard,
    read_shard_attrs,
    read_verified_shard,
    shard_statistics,
    write_embedding_shard,
)

PREPROCESSING = Preprocessing((3, 224, 224), "bicubic", (0.5,) * 3, (0.5,) * 3, 0.875, "center")
IDENTITY = {
    "model_name": "tf_efficientnet_lite0",
    "weights_sha256": "ab" * 32,
    "preprocessing": PREPROCESSING.to_json(),
    "engine": "onnx",
}
TRUNCATED_DETAIL = "cut.jpg: image file is truncated"


def rejections(*rows: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=["image_id", "reason", "detail"], dtype=str)


def write(path: Path, embeddings: np.ndarray, ids: list[str], **attrs) -> None:
    write_embedding_shard(
        path,
        embeddings=embeddings,
        image_ids=ids,
        rejections=rejections(("0001_7_x", "truncated", TRUNCATED_DETAIL)),
        attrs={**IDENTITY, **attrs},
    )


def test_round_trip_of_data_and_attrs(tmp_path: Path) -> None:
    path = tmp_path / "0001.h5"
    embeddings = np.random.default_rng(0).normal(size=(5, 16)).astype(np.float32)
    ids = ["0001_1_a", "0001_1_b", "0001_2_é", "0001_3_c", "0001_4_d"]
    write(path, embeddings, ids, dataset_id=1, fingerprint="f" * 64, mean_norm=1.5)

    shard = read_embedding_shard(path)
    np.testing.assert_array_equal(shard.embeddings, embeddings)
    assert shard.embeddings.dtype == np.float32
    assert shard.image_ids == ids
    assert shard.rejections.to_dict("records") == [
        {
            "image_id": "0001_7_x",
            "reason": "truncated",
            "detail": "cut.jpg: image file is truncated",
        }
    ]
    attrs = shard.attrs
    assert {key: attrs[key] for key in IDENTITY} == IDENTITY
    assert (attrs["dataset_id"], attrs["fingerprint"], attrs["mean_norm"]) == (1, "f" * 64, 1.5)
    assert isinstance(attrs["dataset_id"], int)
    assert (attrs["dim"], attrs["count"], attrs["dtype"]) == (16, 5, "float32")
    assert attrs["schema_version"] == SCHEMA_VERSION
    created = datetime.fromisoformat(str(attrs["created_at"]))
    assert created.tzinfo is not None
    assert abs((datetime.now(UTC) - created).total_seconds()) < 600
    assert shard.preprocessing == PREPROCESSING
    assert read_shard_attrs(path) == attrs


def test_file_layout_is_chunked_float32_and_utf8_strings(tmp_path: Path) -> None:
    path = tmp_path / "0002.h5"
    write(path, np.ones((3, 8), dtype=np.float64), ["a", "b", "c"])
    with h5py.File(path, "r") as shard:
        assert shard["embeddings"].dtype == np.float32
        assert shard["embeddings"].chunks == (3, 8)
        assert shard["embeddings"].compression is None
        assert h5py.check_string_dtype(shard["image_ids"].dtype).encoding == "utf-8"
        assert set(shard["rejections"]) == {"image_id", "reason", "detail"}


def test_ids_only_read_skips_the_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "0003.h5"
    write(path, np.ones((2, 4), dtype=np.float32), ["a", "b"])
    shard = read_embedding_shard(path, load_embeddings=False)
    assert shard.embeddings is None
    assert shard.image_ids == ["a", "b"]


def test_empty_shard_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "0004.h5"
    write_embedding_shard(
        path,
        embeddings=np.zeros((0, 12), dtype=np.float32),
        image_ids=[],
        rejections=rejections(),
        attrs=IDENTITY,
    )
    shard = read_embedding_shard(path)
    assert shard.embeddings.shape == (0, 12)
    assert shard.image_ids == []
    assert shard.rejections.empty


def test_failed_write_leaves_the_previous_shard_intact(tmp_path: Path) -> None:
    path = tmp_path / "0005.h5"
    write(path, np.full((2, 4), 3.0, dtype=np.float32), ["old_a", "old_b"], fingerprint="old")
    before = path.read_bytes()

    with pytest.raises(TypeError, match="'broken'"):
        write(path, np.zeros((7, 4), dtype=np.float32), list("abcdefg"), broken=object())

    assert path.read_bytes() == before
    assert read_embedding_shard(path).image_ids == ["old_a", "old_b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0005.h5"]


def test_failed_first_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write(tmp_path / "0006.h5", np.zeros((1, 4), dtype=np.float32), ["a"], broken=[1, 2])
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_malformed_content(tmp_path: Path) -> None:
    path = tmp_path / "0007.h5"
    with pytest.raises(EmbeddingShardError, match="missing \\['engine'\\]"):
        write_embedding_shard(
            path,
            embeddings=np.zeros((1, 4), dtype=np.float32),
            image_ids=["a"],
            rejections=rejections(),
            attrs={k: v for k, v in IDENTITY.items() if k != "engine"},
        )
    with pytest.raises(EmbeddingShardError, match=r"reserved.*count"):
        write(path, np.zeros((1, 4), dtype=np.float32), ["a"], count=3)
    with pytest.raises(EmbeddingShardError, match="2 embeddings but 1 image ids"):
        write(path, np.zeros((2, 4), dtype=np.float32), ["a"])
    with pytest.raises(EmbeddingShardError, match="NaN"):
        write(path, np.array([[1.0, np.nan]], dtype=np.float32), ["a"])
    assert not path.exists()


def test_reader_names_foreign_old_and_broken_files(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as file:
        file["backbone_embeddings"] = np.zeros((2, 3))
    with pytest.raises(EmbeddingShardError, match="not a GeoTriplet embedding shard"):
        read_embedding_shard(foreign)

    old = tmp_path / "old.h5"
    write(old, np.zeros((1, 4), dtype=np.float32), ["a"])
    with h5py.File(old, "a") as file:
        file.attrs["schema_version"] = 0
    with pytest.raises(EmbeddingShardError, match="schema version 0"):
        read_shard_attrs(old)

    inconsistent = tmp_path / "inconsistent.h5"
    write(inconsistent, np.zeros((2, 4), dtype=np.float32), ["a", "b"])
    with h5py.File(inconsistent, "a") as file:
        file.attrs["count"] = 3
    with pytest.raises(EmbeddingShardError, match=r"count x dim \(3, 4\)"):
        read_embedding_shard(inconsistent)

    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(EmbeddingShardError, match="not a readable HDF5 file"):
        read_embedding_shard(text)
    with pytest.raises(FileNotFoundError, match=r"absent\.h5"):
        read_embedding_shard(tmp_path / "absent.h5")


def test_a_verified_read_finds_any_edit_of_rows_ids_or_rejections(tmp_path: Path) -> None:
    path = tmp_path / "0001.h5"
    embeddings = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    write(path, embeddings, [f"0001_{i}" for i in range(5)])
    np.testing.assert_array_equal(read_verified_shard(path).embeddings, embeddings)
    edits = {
        "row": lambda shard: shard["embeddings"].__setitem__((2, 3), 0.0),
        "id": lambda shard: shard["image_ids"].__setitem__(1, "0001_9"),
        "rejection": lambda shard: shard["rejections/reason"].__setitem__(0, "too_small"),
    }
    backup = path.read_bytes()
    for name, edit in edits.items():
        path.write_bytes(backup)
        with h5py.File(path, "r+") as shard:
            edit(shard)
        with pytest.raises(EmbeddingShardError, match="no longer matches the checksum"):
            read_verified_shard(path)
        assert read_embedding_shard(path).image_ids, name  # an unverified read still works


def test_statistics_and_checksum_read_block_by_block_agree_with_the_whole(
    tmp_path: Path,
) -> None:
    rows = 40_000  # more than two read blocks
    embeddings = np.random.default_rng(3).normal(size=(rows, 4)).astype(np.float32)
    embeddings[-1] = 0.0  # a zero-filled failure in the last block
    mapped = np.lib.format.open_memmap(
        tmp_path / "features.npy", mode="w+", dtype=np.float32, shape=embeddings.shape
    )
    mapped[:] = embeddings
    ids = [f"i{n}" for n in range(rows)]
    write(tmp_path / "shard.h5", mapped, ids)  # written from a memory map, block by block

    stats = shard_statistics(tmp_path / "shard.h5")
    norms = np.linalg.norm(embeddings, axis=1)
    assert (stats.rows, stats.non_finite_rows, stats.zero_rows) == (rows, 0, 1)
    assert stats.min_norm == 0.0
    assert stats.mean_norm == pytest.approx(norms.mean(), rel=1e-6)
    shard = read_verified_shard(tmp_path / "shard.h5", load_embeddings=False)
    assert shard.embeddings is None and len(shard.image_ids) == rows
    assert shard.attrs["content_sha256"] == content_sha256(
        embeddings, ids, rejections(("0001_7_x", "truncated", TRUNCATED_DETAIL))
    )
    np.testing.assert_array_equal(
        read_verified_shard(tmp_path / "shard.h5").embeddings, embeddings
    )
