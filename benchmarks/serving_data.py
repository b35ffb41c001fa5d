"""Data for the serving benchmarks: a real serving model, random unit vectors, a synthetic
image table, bundles published from them, and a photo-like JPEG to upload.

The model (model.onnx + preprocessing.json) is taken from an existing bundle, by default the
demo's `data/bundles/current` (`make demo`).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.manifest import read_manifest
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing
from geotriplet_assets.config import IndexConfig
from geotriplet_assets.serving.bundle_publish import PublishedBundle, publish_bundle

DEFAULT_MODEL_SOURCE = Path("data/bundles")
_CHUNK_ROWS = 100_000
_IMAGES_PER_BUILDING = 5
_BUILDINGS_PER_DISTRICT = 50
_BUILDING_SPREAD = 1.0  # a building's noise around its district, relative to unit length
_VIEW_SPREAD = 0.5  # a view's noise around its building: cosine between views about 0.8
_CITY_CENTRE = (50.8798, 4.7005)


@dataclass(frozen=True)
class ServingModel:
    """The model files of a bundle: model.onnx and its preprocessing, and the manifest's
    description of the model."""

    path: Path
    preprocessing: Preprocessing
    decode_limits: DecodeLimits
    info: dict[str, Any]
    embedding_dim: int

    @classmethod
    def from_bundle(cls, location: Path) -> ServingModel:
        """LOCATION is a bundle directory, or a bundles directory whose `current` names one."""
        bundle = location
        if not (location / fmt.MANIFEST).is_file():
            version = fmt.read_current_version(location)
            if version is None:
                raise SystemExit(
                    f"no bundle at {location}: run `make demo` or pass --model-from with a "
                    "bundle (or bundles) directory holding a serving model.onnx"
                )
            bundle = location / version
        manifest = read_manifest(bundle)
        spec = json.loads((bundle / fmt.PREPROCESSING).read_text(encoding="utf-8"))
        return cls(
            path=bundle / fmt.MODEL,
            preprocessing=Preprocessing.from_json(json.dumps(spec)),
            decode_limits=DecodeLimits(**spec["decode_limits"]),
            info=dict(manifest.raw["model"]),
            embedding_dim=manifest.embedding_dim,
        )


def random_unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """(COUNT, DIM) float32 directions uniform on the sphere, generated in chunks."""
    rng = np.random.default_rng(seed)
    vectors = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, _CHUNK_ROWS):
        chunk = rng.standard_normal((min(_CHUNK_ROWS, count - start), dim), dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        vectors[start : start + len(chunk)] = chunk
    return vectors


def building_like_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """(COUNT, DIM) unit vectors with the structure of building embeddings: districts of
    buildings of 5 views each (the rows of `synthetic_images`). A building's direction is its
    district's plus noise (neighbouring buildings share a style); a view is its building's
    plus noise, two views of one building having a cosine of about 0.8."""
    rng = np.random.default_rng(seed)
    centres = _building_centres(_buildings(count), dim, rng)
    return _views(centres, np.arange(count) // _IMAGES_PER_BUILDING, rng)


def building_like_queries(
    count: int, indexed: int, dim: int, seed: int, query_seed: int
) -> np.ndarray:
    """COUNT new views of buildings drawn at random from the city of
    `building_like_vectors(INDEXED, DIM, SEED)`, as new photos of indexed buildings are."""
    centres = _building_centres(_buildings(indexed), dim, np.random.default_rng(seed))
    rng = np.random.default_rng(query_seed)
    return _views(centres, rng.integers(0, len(centres), count), rng)


def _buildings(images: int) -> int:
    return -(-images // _IMAGES_PER_BUILDING)


def _building_centres(buildings: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    districts = max(1, buildings // _BUILDINGS_PER_DISTRICT)
    district = _unit(rng.standard_normal((districts, dim), dtype=np.float32))
    noise = rng.standard_normal((buildings, dim), dtype=np.float32) / np.sqrt(dim)
    return _unit(district[rng.integers(0, districts, buildings)] + _BUILDING_SPREAD * noise)


def _views(centres: np.ndarray, building: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    vectors = np.empty((len(building), centres.shape[1]), dtype=np.float32)
    for start in range(0, len(building), _CHUNK_ROWS):
        rows = building[start : start + _CHUNK_ROWS]
        noise = rng.standard_normal((len(rows), centres.shape[1]), dtype=np.float32)
        vectors[start : start + len(rows)] = _unit(
            centres[rows] + _VIEW_SPREAD * noise / np.sqrt(centres.shape[1])
        )
    return vectors


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


VECTOR_DATA = {"uniform": random_unit_vectors, "buildings": building_like_vectors}


def synthetic_images(count: int, seed: int) -> pd.DataFrame:
    """An images.parquet table: buildings of 5 images each, scattered over ~6 x 6 km."""
    rng = np.random.default_rng(seed)
    rows = np.arange(count)
    building = rows // _IMAGES_PER_BUILDING
    buildings = int(building[-1]) + 1
    site_lat = _CITY_CENTRE[0] + rng.uniform(-0.027, 0.027, buildings)
    site_lon = _CITY_CENTRE[1] + rng.uniform(-0.04, 0.04, buildings)
    return pd.DataFrame(
        {
            "image_id": [f"bench/{b}/img_{i:07d}" for i, b in zip(rows, building, strict=True)],
            "dataset_id": 1,
            "target_id": building,
            "patch_id": rows % _IMAGES_PER_BUILDING,
            "lat": site_lat[building] + rng.normal(0, 1e-4, count),
            "lon": site_lon[building] + rng.normal(0, 1e-4, count),
            "split": "train",
        }
    )


def publish_random_bundle(
    bundles_dir: Path,
    model: ServingModel,
    count: int,
    index: IndexConfig,
    seed: int,
    keep: int = 3,
    data: str = "uniform",
) -> tuple[PublishedBundle, float]:
    """Publish a bundle of COUNT random vectors (SEED) with MODEL, keeping the KEEP newest
    bundles; also the seconds it took (index build, build-time recall, writing and hashing
    the files). DATA: `uniform` directions, or `buildings` (`building_like_vectors`)."""
    vectors = VECTOR_DATA[data](count, model.embedding_dim, seed)
    images = synthetic_images(count, seed)
    started = time.perf_counter()
    published = publish_bundle(
        bundles_dir,
        model_path=model.path,
        preprocessing=model.preprocessing,
        decode_limits=model.decode_limits,
        vectors=vectors,
        images=images,
        index_settings=index,
        model_info=model.info,
        inputs={"benchmark": f"{data} random unit vectors, seed {seed}"},
        keep=keep,
    )
    return published, time.perf_counter() - started


def bundle_bytes(bundle_dir: Path) -> int:
    return sum(path.stat().st_size for path in bundle_dir.iterdir() if path.is_file())


def photo_like_jpeg(seed: int, size: int = 640) -> bytes:
    """Smooth colour fields, sensor-like noise and hard-edged shapes at JPEG quality 90."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size // 36, size // 36, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    noisy = smooth.astype(np.int16) + rng.normal(0, 6, smooth.shape).astype(np.int16)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, w, h = (int(v) for v in rng.integers(0, size * 3 // 4, 4))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle((x, y, x + w // 3 + 4, y + h // 3 + 4), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
