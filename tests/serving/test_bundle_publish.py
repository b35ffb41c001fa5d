import json
import os
import time
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import pytest

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.errors import BundleLoadError
from geotriplet_assets.bundle.image_table import IMAGE_COLUMNS
from geotriplet_assets.bundle.manifest import check_bundle_files, read_manifest
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing
from geotriplet_assets.config import IndexConfig
from geotriplet_assets.serving.bundle_publish import (
    BundleInputError,
    prune_bundles,
    publish_bundle,
)
from tests.factories.bundles import write_tiny_model

PREPROCESSING = Preprocessing(
    (3, 32, 32), "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.875, "center"
)


def unit_vectors(count: int, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(count, 16)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def image_table(count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": [f"0001/img_{i}" for i in range(count)],
            "dataset_id": 1,
            "target_id": np.arange(count) // 3,
            "patch_id": np.arange(count),
            "lat": 50.0 + np.arange(count) * 1e-4,
            "lon": 4.0,
            "split": "train",
        }
    )


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    """A real ONNX model of the bundle's form: the bundle is loaded before it is published."""
    path = tmp_path / "model.onnx"
    write_tiny_model(path, size=32, dim=16)
    return path


def publish(bundles: Path, model: Path, vectors: np.ndarray, index=None, **kwargs):
    return publish_bundle(
        bundles,
        model_path=model,
        preprocessing=PREPROCESSING,
        decode_limits=DecodeLimits(),
        vectors=vectors,
        images=image_table(len(vectors)),
        index_settings=index or IndexConfig(),
        model_info={"backbone": "test"},
        inputs={"head": "abc"},
        **kwargs,
    )


def test_a_published_bundle_is_complete_current_and_verifiable(tmp_path, model_file):
    bundles = tmp_path / "bundles"
    vectors = unit_vectors(30)
    published = publish(bundles, model_file, vectors)
    assert fmt.read_current_version(bundles) == published.version
    assert fmt.is_bundle_version(published.version)
    manifest = read_manifest(published.path)
    assert manifest.raw == published.manifest
    assert manifest.count == 30 and manifest.embedding_dim == 16
    assert manifest.index.type == "flat"
    check_bundle_files(published.path, manifest, verify_hashes=True)
    assert manifest.vectors_dtype == "float16"
    np.testing.assert_array_equal(
        np.load(published.path / fmt.VECTORS), vectors.astype(np.float16)
    )
    index = faiss.read_index(str(published.path / fmt.INDEX))
    assert index.ntotal == 30
    images = pd.read_parquet(published.path / fmt.IMAGES)
    assert list(images.columns) == list(IMAGE_COLUMNS)
    spec = json.loads((published.path / fmt.PREPROCESSING).read_text())
    assert Preprocessing.from_json(json.dumps(spec)) == PREPROCESSING
    assert spec["decode_limits"] == {"min_side": 32, "max_pixels": 50_000_000}
    assert not [p for p in bundles.iterdir() if p.name.startswith(".")]


def test_float32_vectors_are_kept_exactly_when_configured(tmp_path, model_file):
    vectors = unit_vectors(30)
    published = publish(tmp_path / "b", model_file, vectors, IndexConfig(vectors_dtype="float32"))
    assert read_manifest(published.path).vectors_dtype == "float32"
    np.testing.assert_array_equal(np.load(published.path / fmt.VECTORS), vectors)
    # the same vectors stored as float16 are other content: another bundle
    half = publish(tmp_path / "b", model_file, vectors)
    assert not half.reused and half.version != published.version


def test_republishing_the_same_content_keeps_the_current_bundle(tmp_path, model_file):
    bundles = tmp_path / "bundles"
    first = publish(bundles, model_file, unit_vectors(30))
    again = publish(bundles, model_file, unit_vectors(30))
    assert again.reused and again.version == first.version
    changed = publish(bundles, model_file, unit_vectors(30, seed=1))
    assert not changed.reused and changed.version != first.version
    assert fmt.read_current_version(bundles) == changed.version


def test_old_bundles_are_pruned_but_never_the_current_one(tmp_path, model_file):
    bundles = tmp_path / "bundles"
    versions = [
        publish(bundles, model_file, unit_vectors(10, seed=s), keep=2).version for s in range(4)
    ]
    kept = sorted(p.name for p in bundles.iterdir() if fmt.is_bundle_version(p.name))
    assert kept == sorted(versions[-2:])
    fmt.write_current_version(bundles, versions[-2])
    assert prune_bundles(bundles, keep=1) == []
    fmt.write_current_version(bundles, versions[-1])
    assert prune_bundles(bundles, keep=1) == [versions[-2]]
    assert fmt.read_current_version(bundles) == versions[-1]


def test_bad_inputs_publish_nothing(tmp_path, model_file):
    bundles = tmp_path / "bundles"
    with pytest.raises(BundleInputError, match="unit length"):
        publish(bundles, model_file, unit_vectors(10) * 2)
    with pytest.raises(BundleInputError, match="does not exist"):
        publish(bundles, tmp_path / "absent.onnx", unit_vectors(10))
    with pytest.raises(BundleInputError, match="vectors but"):
        publish_bundle(
            bundles,
            model_path=model_file,
            preprocessing=PREPROCESSING,
            decode_limits=DecodeLimits(),
            vectors=unit_vectors(10),
            images=image_table(9),
            index_settings=IndexConfig(),
            model_info={},
            inputs={},
        )
    assert fmt.read_current_version(bundles) is None


def test_a_crashed_publisher_leaves_no_pointer_and_its_leftovers_are_cleaned(tmp_path, model_file):
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    leftover = bundles / ".bundle.tmp-crashed"
    leftover.mkdir()
    old = time.time() - 7 * 3600
    os.utime(leftover, (old, old))
    publish(bundles, model_file, unit_vectors(10))
    assert not leftover.exists()


def test_a_bundle_that_would_not_load_is_never_published(tmp_path, model_file):
    bundles = tmp_path / "bundles"
    first = publish(bundles, model_file, unit_vectors(30, seed=0))
    broken_model = tmp_path / "broken.onnx"
    broken_model.write_bytes(b"not a model")
    with pytest.raises(BundleLoadError, match="ONNX Runtime cannot load"):
        publish(bundles, broken_model, unit_vectors(30, seed=1))
    assert fmt.read_current_version(bundles) == first.version
    assert [p.name for p in bundles.iterdir() if p.is_dir()] == [first.version]
