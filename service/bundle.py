"""Load a search bundle (docs/bundle.md) and answer queries exactly as the service does.

Public, stable API (the pipeline's retrieval report uses it too):

    bundle = load_bundle(path)                        # checks everything, raises BundleLoadError
    pixels = bundle.decode(image_bytes)               # (H, W, 3) uint8 crop
    vectors = bundle.embed(pixels[None])              # (N, E) float32, unit length
    hits = bundle.search([SearchQuery(vectors[0], k=10)])   # list of lists of Neighbour
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import onnxruntime as ort

from geotriplet_assets.core import bundle_format as fmt
from geotriplet_assets.core.backbone import BackboneConfigError, Preprocessing, file_sha256
from geotriplet_assets.core.image_decode import DecodeLimits, decode_bytes_to_uint8
from service.errors import BundleLoadError, UnknownImageError
from service.images import ImageTable
from service.manifest import Manifest, read_manifest
from service.search import GeoFilter, Neighbour, Searcher, SearchQuery, configure_index

__all__ = [
    "BundleLoadError",
    "GeoFilter",
    "LoadedBundle",
    "Neighbour",
    "SearchQuery",
    "UnknownImageError",
    "load_bundle",
]

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


@dataclass(frozen=True)
class LoadedBundle:
    """A bundle in memory: the ONNX model, the FAISS index, the vectors (memory-mapped) and
    the image metadata. Immutable once loaded and safe to share between threads."""

    path: Path
    manifest: Manifest
    preprocessing: Preprocessing
    decode_limits: DecodeLimits
    images: ImageTable
    vectors: np.ndarray
    index: faiss.Index
    session: ort.InferenceSession
    searcher: Searcher = field(repr=False)
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def count(self) -> int:
        return self.manifest.count

    @property
    def dim(self) -> int:
        return self.manifest.embedding_dim

    @property
    def index_type(self) -> str:
        return self.manifest.index.type

    def row_of(self, image_id: str) -> int:
        """The row of IMAGE_ID; raises UnknownImageError (a KeyError)."""
        return self.images.row_of(image_id)

    def image_record(self, row: int) -> dict[str, Any]:
        """image_id, dataset_id, target_id, patch_id, lat, lon and split of ROW."""
        return self.images.record(row)

    def building(self, row: int) -> tuple[int, int]:
        """(dataset_id, target_id) of ROW."""
        return self.images.building(row)

    def vector(self, row: int) -> np.ndarray:
        """The (E,) float32 vector of ROW (a copy)."""
        return np.array(self.vectors[row], dtype=np.float32)

    def decode(self, data: bytes, *, name: str = "<upload>") -> np.ndarray:
        """The model's (H, W, 3) uint8 crop of an encoded image; raises ImageRejected."""
        return decode_bytes_to_uint8(data, self.preprocessing, self.decode_limits, name=name)

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 crops to (N, E) float32 unit vectors, through ONNX Runtime."""
        expected = (self.preprocessing.height, self.preprocessing.width, 3)
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(
                f"pixels must be uint8 of shape (N, {', '.join(map(str, expected))}), "
                f"got {pixels.dtype} {pixels.shape}"
            )
        (embeddings,) = self.session.run([OUTPUT_NAME], {INPUT_NAME: pixels})
        return np.asarray(embeddings, dtype=np.float32)

    def search(self, queries: Sequence[SearchQuery]) -> list[list[Neighbour]]:
        """The hits of each query, best first (see service.search for the semantics)."""
        return self.searcher.search(queries)


def load_bundle(
    path: Path,
    *,
    verify_hashes: bool = True,
    onnx_threads: int | None = None,
    max_pixels: int | None = None,
    exact_filter_max_candidates: int = 50_000,
    search_threads: int | None = None,
) -> LoadedBundle:
    """Load and check the bundle directory PATH; raises BundleLoadError saying what is wrong.

    MAX_PIXELS caps the bundle's own decode limit for uploaded images.
    """
    path = Path(path)
    if not path.is_dir():
        raise BundleLoadError(f"{path}: not a directory")
    manifest = read_manifest(path)
    check_bundle_files(path, manifest, verify_hashes=verify_hashes)
    preprocessing, limits = _read_preprocessing(path / fmt.PREPROCESSING)
    if max_pixels is not None:
        limits = DecodeLimits(
            min_side=limits.min_side, max_pixels=min(limits.max_pixels, max_pixels)
        )
    images = ImageTable.read(path / fmt.IMAGES)
    if images.count != manifest.count:
        raise BundleLoadError(
            f"{path}: images.parquet has {images.count} rows, manifest count is {manifest.count}"
        )
    vectors = _read_vectors(path / fmt.VECTORS, manifest)
    index = _read_index(path / fmt.INDEX, manifest)
    session = _open_model(path / fmt.MODEL, manifest, preprocessing, onnx_threads)
    searcher = Searcher(
        index,
        vectors,
        images,
        exact_filter_max_candidates=exact_filter_max_candidates,
        threads=search_threads,
        rerank=manifest.index.params.get("rerank", 1),
    )
    return LoadedBundle(
        path=path,
        manifest=manifest,
        preprocessing=preprocessing,
        decode_limits=limits,
        images=images,
        vectors=vectors,
        index=index,
        session=session,
        searcher=searcher,
    )


def check_bundle_files(path: Path, manifest: Manifest, *, verify_hashes: bool) -> None:
    for name, entry in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise BundleLoadError(f"{path}: {name} is missing")
        size = file.stat().st_size
        if size != entry.bytes:
            raise BundleLoadError(
                f"{path}: {name} has {size} bytes, the manifest says {entry.bytes}"
            )
        if verify_hashes:
            digest = file_sha256(file)
            if digest != entry.sha256:
                raise BundleLoadError(
                    f"{path}: {name} has SHA-256 {digest}, the manifest says {entry.sha256}"
                )


def _read_preprocessing(path: Path) -> tuple[Preprocessing, DecodeLimits]:
    text = path.read_text(encoding="utf-8")
    try:
        preprocessing = Preprocessing.from_json(text)
    except BackboneConfigError as error:
        raise BundleLoadError(f"{path}: {error}") from error
    limits = json.loads(text).get("decode_limits")
    if not isinstance(limits, dict):
        raise BundleLoadError(f"{path}: decode_limits must be an object with min_side, max_pixels")
    values = {}
    for key in ("min_side", "max_pixels"):
        value = limits.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BundleLoadError(
                f"{path}: decode_limits.{key} must be a positive integer, got {value!r}"
            )
        values[key] = value
    return preprocessing, DecodeLimits(**values)


def _read_vectors(path: Path, manifest: Manifest) -> np.ndarray:
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BundleLoadError(f"{path}: not a readable .npy array: {error}") from error
    expected = (manifest.count, manifest.embedding_dim)
    if vectors.dtype != np.float32 or vectors.shape != expected:
        raise BundleLoadError(
            f"{path}: expected float32 {expected}, got {vectors.dtype} {vectors.shape}"
        )
    if not vectors.flags.c_contiguous:
        raise BundleLoadError(f"{path}: the array must be C-ordered")
    return vectors


def _read_index(path: Path, manifest: Manifest) -> faiss.Index:
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as error:
        raise BundleLoadError(f"{path}: not a readable FAISS index: {error}") from error
    if index.ntotal != manifest.count or index.d != manifest.embedding_dim:
        raise BundleLoadError(
            f"{path}: index holds {index.ntotal} vectors of dimension {index.d}, the manifest "
            f"says {manifest.count} of dimension {manifest.embedding_dim}"
        )
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise BundleLoadError(f"{path}: index metric is not inner product")
    configure_index(index, manifest.index.params)
    return index


def _open_model(
    path: Path, manifest: Manifest, preprocessing: Preprocessing, threads: int | None
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises its own exception types, not exported
        raise BundleLoadError(f"{path}: ONNX Runtime cannot load the model: {error}") from error
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name: node for node in session.get_outputs()}
    if INPUT_NAME not in inputs or inputs[INPUT_NAME].type != "tensor(uint8)":
        raise BundleLoadError(f"{path}: the model needs a uint8 input named {INPUT_NAME!r}")
    if OUTPUT_NAME not in outputs:
        raise BundleLoadError(f"{path}: the model has no output named {OUTPUT_NAME!r}")
    # One forward pass checks the shapes end to end and warms the session up.
    shape = (1, preprocessing.height, preprocessing.width, 3)
    try:
        (embeddings,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.zeros(shape, dtype=np.uint8)})
    except Exception as error:
        raise BundleLoadError(
            f"{path}: the model fails on a {shape} uint8 batch: {error}"
        ) from error
    if embeddings.shape != (1, manifest.embedding_dim) or embeddings.dtype != np.float32:
        raise BundleLoadError(
            f"{path}: the model gives {embeddings.dtype} {embeddings.shape} for one image, "
            f"expected float32 (1, {manifest.embedding_dim})"
        )
    return session
