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

from geotriplet_assets.core import bundle_format as fmt
from geotriplet_assets.core.backbone import Preprocessing
from geotriplet_assets.core.config import IndexConfig
from geotriplet_assets.core.image_decode import DecodeLimits
from geotriplet_assets.core.search_bundle import PublishedBundle, publish_bundle
from service.manifest import read_manifest

DEFAULT_MODEL_SOURCE = Path("data/bundles")
_CHUNK_ROWS = 100_000
_IMAGES_PER_BUILDING = 5
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
) -> tuple[PublishedBundle, float]:
    """Publish a bundle of COUNT random vectors (SEED) with MODEL, keeping the KEEP newest
    bundles; also the seconds it took (index build, build-time recall, writing and hashing
    the files)."""
    vectors = random_unit_vectors(count, model.embedding_dim, seed)
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
        inputs={"benchmark": f"random unit vectors, seed {seed}"},
        keep=keep,
    )
    return published, time.perf_counter() - started


def bundle_bytes(bundle_dir: Path) -> int:
    return sum(path.stat().st_size for path in bundle_dir.iterdir() if path.is_file())


def photo_like_jpeg(seed: int, size: int = 640) -> bytes:
    """Smooth colour fields, sensor-like noise and hard-edged shapes at JPEG quality 90
    (bench_embedding's recipe, kept here so that no torch is imported)."""
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
