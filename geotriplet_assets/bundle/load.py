"""Load a search bundle (docs/bundle.md) and answer queries exactly as the service does.

Public, stable API (the service and the pipeline's retrieval report use it):

    bundle = load_bundle(path)                        # checks everything, raises BundleLoadError
    pixels = bundle.decode(image_bytes)               # (H, W, 3) uint8 crop
    vectors = bundle.embed(pixels[None])              # (N, E) float32, unit length
    hits = bundle.search([SearchQuery(vectors[0], k=10)])   # list of lists of Neighbour
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.errors import BundleLoadError, OriginalUnavailable
from geotriplet_assets.bundle.image_decode import decode_bytes_to_uint8
from geotriplet_assets.bundle.image_table import ImageTable
from geotriplet_assets.bundle.locate import Location, locate
from geotriplet_assets.bundle.manifest import Manifest, check_bundle_files, read_manifest
from geotriplet_assets.bundle.onnx_model import OnnxModel, OnnxModelError
from geotriplet_assets.bundle.preprocessing import (
    DecodeLimits,
    Preprocessing,
    PreprocessingError,
    read_spec,
)
from geotriplet_assets.bundle.search import (
    Neighbour,
    Searcher,
    SearchQuery,
    configure_index,
)


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
    model: OnnxModel
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

    @property
    def has_originals(self) -> bool:
        """Whether the bundle records where its original photos are (thumbnails, re-ranking)."""
        return self.manifest.images_root is not None and self.images.paths is not None

    def original_path(self, row: int) -> Path:
        """The original photo of ROW: the table's `path` under the manifest's `images_root`,
        never outside it; raises OriginalUnavailable."""
        root, relative = self.manifest.images_root, self.images.path(row)
        if root is None or relative is None:
            raise OriginalUnavailable(
                f"bundle {self.version} does not record where its original photos are"
            )
        path = (root / relative).resolve()
        if not path.is_relative_to(root.resolve()):
            raise OriginalUnavailable(
                f"the original of {self.images.image_id(row)} lies outside {root}"
            )
        return path

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
        return self.model.embed(pixels)

    def locate(self, hits: Sequence[Neighbour]) -> Location | None:
        """Where the photo whose best hits are HITS was taken (`bundle.locate`), with this
        bundle's cluster radius and confidence calibration."""
        params = self.manifest.locate
        return locate(
            hits, cluster_radius_m=params.cluster_radius_m, calibration=params.calibration
        )

    def search(self, queries: Sequence[SearchQuery]) -> list[list[Neighbour]]:
        """The hits of each query, best first (`search.Searcher` gives the semantics)."""
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
    try:
        preprocessing, limits = read_spec(path / fmt.PREPROCESSING)
    except PreprocessingError as error:
        raise BundleLoadError(f"{path / fmt.PREPROCESSING}: {error}") from error
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
    model = _open_model(path / fmt.MODEL, manifest, preprocessing, onnx_threads)
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
        model=model,
        searcher=searcher,
    )


def _read_vectors(path: Path, manifest: Manifest) -> np.ndarray:
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BundleLoadError(f"{path}: not a readable .npy array: {error}") from error
    expected = (manifest.count, manifest.embedding_dim)
    if vectors.dtype != np.dtype(manifest.vectors_dtype) or vectors.shape != expected:
        raise BundleLoadError(
            f"{path}: expected {manifest.vectors_dtype} {expected}, "
            f"got {vectors.dtype} {vectors.shape}"
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
) -> OnnxModel:
    try:
        model = OnnxModel(path, threads)
    except OnnxModelError as error:
        raise BundleLoadError(f"{path}: {error}") from error
    # One forward pass checks the shapes end to end and warms the session up.
    shape = (1, preprocessing.height, preprocessing.width, 3)
    try:
        embeddings = model.embed(np.zeros(shape, dtype=np.uint8))
    except Exception as error:  # onnxruntime raises its own types, not exported
        raise BundleLoadError(
            f"{path}: the model fails on a {shape} uint8 batch: {error}"
        ) from error
    if embeddings.shape != (1, manifest.embedding_dim):
        raise BundleLoadError(
            f"{path}: the model gives {embeddings.dtype} {embeddings.shape} for one image, "
            f"expected float32 (1, {manifest.embedding_dim})"
        )
    return model
