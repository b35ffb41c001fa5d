"""Search bundles for the service tests, published by the pipeline's `publish_bundle`.

A tiny ONNX model stands in for backbone + head: uint8 (N, H, W, 3) pixels, centred,
flattened, randomly projected and L2-normalised to float32 (N, E) `embeddings`.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from geotriplet_assets.bundle.image_decode import decode_bytes_to_uint8
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing
from geotriplet_assets.config import IndexConfig
from geotriplet_assets.serving.bundle_publish import publish_bundle

CITY_CENTRE = (50.8798, 4.7005)
IMAGE_SIZE = 32
DECODE_LIMITS = DecodeLimits(min_side=16, max_pixels=4_000_000)


def tiny_preprocessing(size: int = IMAGE_SIZE) -> Preprocessing:
    return Preprocessing(
        input_size=(3, size, size),
        interpolation="bilinear",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=0.875,
        crop_mode="center",
    )


def write_tiny_model(path: Path, *, size: int = IMAGE_SIZE, dim: int = 16, seed: int = 0) -> None:
    """An ONNX graph: images (N, size, size, 3) uint8 -> embeddings (N, dim) unit float32."""
    features = size * size * 3
    projection = np.random.default_rng(seed).standard_normal((features, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Cast", ["images"], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["as_float", "half"], ["centred"]),
        helper.make_node("Flatten", ["centred"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "projection"], ["projected"]),
        helper.make_node("LpNormalization", ["projected"], ["embeddings"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_embedder",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["N", size, size, 3])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["N", dim])],
        initializer=[
            numpy_helper.from_array(np.array(127.5, dtype=np.float32), "half"),
            numpy_helper.from_array(projection, "projection"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def embed_with_model(model_path: Path, pixels: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(["embeddings"], {"images": pixels})[0]


def photo_bytes(seed: int, *, fmt: str = "PNG", size: tuple[int, int] = (64, 48)) -> bytes:
    """A synthetic photo: a random 6x6 colour grid, upscaled; distinct for each seed."""
    grid = np.random.default_rng(seed).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize(size, Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@dataclass(frozen=True)
class City:
    """Images of buildings around CITY_CENTRE: metadata table and unit vectors."""

    images: pa.Table
    vectors: np.ndarray
    photos: dict[str, bytes]
    """Encoded images whose vectors are the model's embedding of them, by image_id."""


def make_city(
    model_path: Path,
    *,
    buildings: int = 300,
    per_building: int = 5,
    photos: int = 8,
    dim: int = 16,
    seed: int = 1,
    prefix: str = "city",
) -> City:
    """BUILDINGS buildings of PER_BUILDING images within ~3 km of the centre. Vectors are the
    building's random direction plus noise; the first PHOTOS images are real encoded images
    embedded by the model. Image ids contain '/'."""
    rng = np.random.default_rng(seed)
    count = buildings * per_building
    building = np.repeat(np.arange(buildings), per_building)
    centres = rng.standard_normal((buildings, dim))
    vectors = centres[building] + 0.6 * rng.standard_normal((count, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    site_lat = CITY_CENTRE[0] + rng.uniform(-0.027, 0.027, buildings)
    site_lon = CITY_CENTRE[1] + rng.uniform(-0.04, 0.04, buildings)
    lat = site_lat[building] + rng.normal(0, 1e-4, count)
    lon = site_lon[building] + rng.normal(0, 1e-4, count)
    dataset_id = 1 + building % 3
    target_id = 100 + building
    image_ids = [
        f"{prefix}/{d}/{t}/img_{i:05d}"
        for i, (d, t) in enumerate(zip(dataset_id, target_id, strict=True))
    ]
    preprocessing = tiny_preprocessing()
    encoded: dict[str, bytes] = {}
    for i in range(photos):
        data = photo_bytes(1000 + i, fmt="JPEG" if i % 2 else "PNG")
        pixels = decode_bytes_to_uint8(data, preprocessing, DECODE_LIMITS)
        vectors[i] = embed_with_model(model_path, pixels[None])[0]
        encoded[image_ids[i]] = data
    splits = np.array(["train", "val", "test", "excluded", "unassigned"])[building % 5]
    table = pa.table(
        {
            "image_id": pa.array(image_ids, pa.string()),
            "dataset_id": pa.array(dataset_id, pa.int64()),
            "target_id": pa.array(target_id, pa.int64()),
            "patch_id": pa.array(np.arange(count) % per_building, pa.int64()),
            "lat": pa.array(lat, pa.float64()),
            "lon": pa.array(lon, pa.float64()),
            "split": pa.array(splits, pa.string()),
        }
    )
    return City(images=table, vectors=vectors, photos=encoded)


def write_bundle(
    bundles_dir: Path,
    *,
    model_path: Path,
    vectors: np.ndarray,
    images: pa.Table,
    preprocessing: Preprocessing | None = None,
    decode_limits: DecodeLimits = DECODE_LIMITS,
    index_type: str = "flat",
    index_params: dict[str, Any] | None = None,
    images_root: Path | None = None,
) -> Path:
    """Publish a bundle with the pipeline's own `publish_bundle`; it becomes `current`."""
    published = publish_bundle(
        bundles_dir,
        model_path=model_path,
        preprocessing=preprocessing or tiny_preprocessing(),
        decode_limits=decode_limits,
        vectors=vectors,
        images=images.to_pandas(),
        index_settings=IndexConfig(type=index_type, **(index_params or {})),
        model_info={"backbone": "tiny-test-projection", "embedding_dim": int(vectors.shape[1])},
        inputs={},
        keep=10,
        images_root=images_root,
    )
    return published.path


def point_current(bundles_dir: Path, name: str) -> None:
    """Replace `current` atomically (write current.tmp-*, rename over)."""
    handle, temporary = tempfile.mkstemp(prefix="current.tmp-", dir=bundles_dir)
    with os.fdopen(handle, "w") as file:
        file.write(name + "\n")
    os.replace(temporary, bundles_dir / "current")
