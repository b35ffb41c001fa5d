from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from geotriplet_assets.bundle.errors import BundleLoadError, UnknownImageError
from geotriplet_assets.bundle.image_decode import TOO_LARGE, TOO_SMALL, ImageRejected
from geotriplet_assets.bundle.load import LoadedBundle, load_bundle
from geotriplet_assets.bundle.search import SearchQuery
from tests.factories.bundles import photo_bytes, write_tiny_model
from tests.factories.service_app import ServiceData


def test_a_bundle_loads_with_its_manifest(city_bundle: LoadedBundle, service_data) -> None:
    assert city_bundle.version == service_data.bundle_path.name
    assert city_bundle.count == 1500
    assert city_bundle.dim == 16
    assert city_bundle.index_type == "flat"
    assert city_bundle.preprocessing.input_size == (3, 32, 32)
    assert city_bundle.decode_limits.min_side == 16
    assert city_bundle.manifest.raw["model"]["backbone"] == "tiny-test-projection"


def test_rows_records_and_vectors(city_bundle: LoadedBundle, service_data) -> None:
    table = service_data.city.images
    image_id = table.column("image_id")[42].as_py()
    row = city_bundle.row_of(image_id)
    assert row == 42
    record = city_bundle.image_record(row)
    assert record["image_id"] == image_id
    assert record["split"] == table.column("split")[42].as_py()
    assert city_bundle.building(row) == (record["dataset_id"], record["target_id"])
    # stored as float16 (the default), handed out as float32
    assert city_bundle.manifest.vectors_dtype == "float16"
    expected = service_data.city.vectors[42].astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(city_bundle.vector(row), expected)
    with pytest.raises(KeyError):
        city_bundle.row_of("no/such/image")
    with pytest.raises(UnknownImageError):
        city_bundle.row_of("no/such/image")


def test_decode_and_embed_reproduce_the_indexed_vector(
    city_bundle: LoadedBundle, service_data
) -> None:
    for image_id, data in service_data.city.photos.items():
        pixels = city_bundle.decode(data)
        assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint8
        embedding = city_bundle.embed(pixels[None])
        assert embedding.shape == (1, 16) and embedding.dtype == np.float32
        # within float16 rounding of the stored row
        assert float(embedding[0] @ city_bundle.vector(city_bundle.row_of(image_id))) > 0.999
    with pytest.raises(ValueError, match="uint8 of shape"):
        city_bundle.embed(np.zeros((1, 31, 32, 3), dtype=np.uint8))


def test_decode_limits_are_the_bundle_s_capped_by_the_caller(service_data) -> None:
    bundle = load_bundle(service_data.bundle_path, verify_hashes=False, max_pixels=64 * 48 - 1)
    assert bundle.decode_limits.max_pixels == 64 * 48 - 1
    with pytest.raises(ImageRejected) as raised:
        bundle.decode(photo_bytes(1, size=(64, 48)))
    assert raised.value.reason == TOO_LARGE
    with pytest.raises(ImageRejected) as raised:
        bundle.decode(photo_bytes(1, size=(15, 40)))
    assert raised.value.reason == TOO_SMALL


# --- damaged bundles -------------------------------------------------------------------


def _copy(service_data: ServiceData, tmp_path: Path) -> Path:
    return Path(
        shutil.copytree(service_data.bundle_path, tmp_path / service_data.bundle_path.name)
    )


def _manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def _write_manifest(path: Path, manifest: dict) -> None:
    (path / "manifest.json").write_text(json.dumps(manifest))


def _reseal(path: Path) -> None:
    """Record the files' current sizes and hashes, as if the damage had been published."""
    manifest = _manifest(path)
    for name in manifest["files"]:
        data = (path / name).read_bytes()
        manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    _write_manifest(path, manifest)


def _edit_manifest(**changes: object) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        manifest = _manifest(path)
        manifest.update(changes)
        _write_manifest(path, manifest)

    return edit


def _flip_a_byte(name: str) -> Callable[[Path], None]:
    def flip(path: Path) -> None:
        data = bytearray((path / name).read_bytes())
        data[-1] ^= 0xFF
        (path / name).write_bytes(bytes(data))

    return flip


def _vectors_of_shape(rows: int, dim: int) -> Callable[[Path], None]:
    def replace(path: Path) -> None:
        np.save(path / "vectors.npy", np.zeros((rows, dim), dtype=np.float32))
        _reseal(path)

    return replace


def _drop_parquet_rows(path: Path) -> None:
    table = pq.read_table(path / "images.parquet")
    pq.write_table(table.slice(0, 10), path / "images.parquet")
    _reseal(path)


def _model_of_dim(dim: int) -> Callable[[Path], None]:
    def replace(path: Path) -> None:
        write_tiny_model(path / "model.onnx", dim=dim)
        _reseal(path)

    return replace


def _preprocessing(**changes: object) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        spec = json.loads((path / "preprocessing.json").read_text())
        spec.update(changes)
        (path / "preprocessing.json").write_text(json.dumps(spec))
        _reseal(path)

    return edit


def _remove(name: str) -> Callable[[Path], None]:
    return lambda path: (path / name).unlink()


def _index_files(path: Path) -> None:
    manifest = _manifest(path)
    del manifest["files"]["index.faiss"]
    _write_manifest(path, manifest)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_remove("manifest.json"), "manifest.json is missing"),
        (_remove("vectors.npy"), "vectors.npy is missing"),
        (lambda p: (p / "manifest.json").write_text("{"), "not valid JSON"),
        (_edit_manifest(format_version=3), "format_version 3 is not supported"),
        (_edit_manifest(count="1500"), "'count' must be int"),
        (_edit_manifest(embedding_dim=0), "embedding_dim must be at least 1"),
        (_edit_manifest(index={"type": "lsh", "metric": "inner_product"}), "index.type 'lsh'"),
        (_edit_manifest(index={"type": "flat", "metric": "l2"}), "metric must be 'inner_product'"),
        (
            _edit_manifest(
                index={"type": "flat", "metric": "inner_product", "params": {"rerank": 0}}
            ),
            "index.params.rerank must be an integer >= 1, got 0",
        ),
        (_edit_manifest(count=1499), "images.parquet has 1500 rows, manifest count is 1499"),
        (_index_files, "files does not list index.faiss"),
        (_flip_a_byte("index.faiss"), "index.faiss has SHA-256"),
        (lambda p: (p / "images.parquet").write_bytes(b"x"), "images.parquet has 1 bytes"),
        (_vectors_of_shape(1500, 8), r"expected float16 \(1500, 16\)"),
        (_vectors_of_shape(1500, 16), r"expected float16 \(1500, 16\), got float32"),
        (_edit_manifest(vectors_dtype="int8"), "vectors_dtype must be one of float16, float32"),
        (_edit_manifest(format_version=1), "vectors_dtype needs format_version 2"),
        (_drop_parquet_rows, "images.parquet has 10 rows"),
        (_model_of_dim(8), r"expected float32 \(1, 16\)"),
        (_preprocessing(input_size=[3, 24, 24]), r"fails on a \(1, 24, 24, 3\) uint8 batch"),
        (_preprocessing(crop_mode="bogus"), "crop_mode 'bogus'"),
        (_preprocessing(decode_limits={"min_side": 0, "max_pixels": 5}), "min_side"),
        (_preprocessing(decode_limits=None), "decode_limits must be an object"),
    ],
)
def test_a_damaged_bundle_is_refused_with_the_reason(
    service_data: ServiceData, tmp_path: Path, damage: Callable[[Path], None], message: str
) -> None:
    path = _copy(service_data, tmp_path)
    damage(path)
    with pytest.raises(BundleLoadError, match=message):
        load_bundle(path)


def test_hashes_are_checked_only_when_asked(service_data: ServiceData, tmp_path: Path) -> None:
    # Same size, different bytes (the last float of the last vector): only the hash can tell.
    path = _copy(service_data, tmp_path)
    _flip_a_byte("vectors.npy")(path)
    with pytest.raises(BundleLoadError, match=r"vectors\.npy has SHA-256"):
        load_bundle(path)
    assert load_bundle(path, verify_hashes=False).count == 1500


def test_a_directory_that_is_not_there_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BundleLoadError, match="not a directory"):
        load_bundle(tmp_path / "nothing")


def test_a_format_1_bundle_of_float32_vectors_still_loads(
    service_data: ServiceData, tmp_path: Path
) -> None:
    path = _copy(service_data, tmp_path)
    vectors = service_data.city.vectors.astype(np.float32)
    np.save(path / "vectors.npy", vectors)
    _reseal(path)
    manifest = _manifest(path)
    manifest["format_version"] = 1
    del manifest["vectors_dtype"]
    _write_manifest(path, manifest)
    bundle = load_bundle(path)
    assert (bundle.manifest.format_version, bundle.manifest.vectors_dtype) == (1, "float32")
    np.testing.assert_array_equal(bundle.vector(42), vectors[42])
    hits = bundle.search([SearchQuery(vector=vectors[42], k=1)])[0]
    assert hits[0].row == 42 and hits[0].score == pytest.approx(1.0, abs=1e-6)
