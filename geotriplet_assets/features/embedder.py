"""Embed image files with a backbone: decode in DataLoader workers, run ONNX Runtime or torch.

Workers hand over uint8 (H, W, 3) crops; the engines normalise them (in the ONNX graph,
or on the torch device).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from geotriplet_assets.bundle.image_decode import ImageRejected, decode_to_uint8
from geotriplet_assets.bundle.onnx_model import OnnxModel
from geotriplet_assets.bundle.preprocessing import DEFAULT_LIMITS, DecodeLimits, Preprocessing
from geotriplet_assets.features.backbone import BackboneSpec, load_torch_backbone
from geotriplet_assets.features.embedding_store import REJECTION_COLUMNS
from geotriplet_assets.features.onnx_export import ensure_onnx_export
from geotriplet_assets.features.pixel_input import PixelInputBackbone, pixel_batch_shape

NON_FINITE_EMBEDDING = "non_finite_embedding"

EngineName = Literal["auto", "onnx", "torch"]
DeviceName = Literal["auto", "cpu", "cuda"]
ProgressCallback = Callable[[int, int], None]
_NON_FINITE_DETAIL = "the backbone produced NaN or infinite values"
_ONNX_ON_CPU_ONLY = "engine='onnx' runs on ONNX Runtime's CPU provider; use device='cpu'"


@dataclass
class EmbeddingRun:
    """Embeddings of the accepted images, in input order, and why the others were rejected."""

    embeddings: np.ndarray
    image_ids: list[str]
    rejections: pd.DataFrame
    seconds: float
    engine: str
    device: str


class _Rejection(NamedTuple):
    reason: str
    detail: str


class _ImageFiles(Dataset):
    """Item i: (i, (H, W, 3) uint8 crop) or (i, _Rejection)."""

    def __init__(
        self, paths: Sequence[Path], preprocessing: Preprocessing, limits: DecodeLimits
    ) -> None:
        self._paths = list(paths)
        self._preprocessing = preprocessing
        self._limits = limits

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | _Rejection]:
        try:
            return index, decode_to_uint8(self._paths[index], self._preprocessing, self._limits)
        except ImageRejected as rejected:
            return index, _Rejection(rejected.reason, rejected.detail)


@dataclass
class _Batch:
    indices: list[int]
    images: torch.Tensor | None
    rejected: list[tuple[int, _Rejection]]

    def pin_memory(self) -> _Batch:
        if self.images is None:
            return self
        return _Batch(self.indices, self.images.pin_memory(), self.rejected)


def _collate(items: list[tuple[int, np.ndarray | _Rejection]]) -> _Batch:
    decoded = [(i, item) for i, item in items if isinstance(item, np.ndarray)]
    rejected = [(i, item) for i, item in items if isinstance(item, _Rejection)]
    if not decoded:
        return _Batch([], None, rejected)
    images = torch.empty((len(decoded), *decoded[0][1].shape), dtype=torch.uint8)
    if get_worker_info() is not None:
        # Stacked straight into shared memory, the batch crosses to the main process uncopied.
        images.share_memory_()
    np.stack([array for _, array in decoded], out=images.numpy())
    return _Batch([i for i, _ in decoded], images, rejected)


class EmbeddingEngine(Protocol):
    """Runs the backbone on a batch of decoded uint8 crops: (N,H,W,3) -> (N,dim)."""

    dim: int

    def embed(self, images: torch.Tensor) -> np.ndarray: ...


class OnnxEngine:
    """ONNX Runtime on CPU."""

    def __init__(self, backbone: OnnxModel) -> None:
        self._backbone = backbone
        self.dim = backbone.dim

    def embed(self, images: torch.Tensor) -> np.ndarray:
        return self._backbone.embed(images.numpy())


class TorchEngine:
    """Eager PyTorch, normalising on the device; on CUDA channels-last with float16 autocast."""

    def __init__(self, model: torch.nn.Module, device: str, preprocessing: Preprocessing) -> None:
        self._device = torch.device(device)
        self._cuda = self._device.type == "cuda"
        # An NHWC batch permuted to NCHW is already channels-last in memory.
        memory_format = torch.channels_last if self._cuda else torch.contiguous_format
        wrapped = PixelInputBackbone(model, preprocessing)
        self._model = wrapped.to(self._device, memory_format=memory_format).eval()
        probe = torch.zeros(pixel_batch_shape(preprocessing, 1), dtype=torch.uint8)
        self.dim = int(self.embed(probe).shape[1])

    def embed(self, images: torch.Tensor) -> np.ndarray:
        batch = images.to(self._device, non_blocking=True)
        with (
            torch.inference_mode(),
            torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self._cuda),
        ):
            features = self._model(batch)
        return features.float().cpu().numpy()


class Embedder:
    """A backbone ready to embed image files; build it with `Embedder.create`."""

    def __init__(
        self,
        engine: EmbeddingEngine,
        *,
        model_name: str,
        weights_sha256: str,
        preprocessing: Preprocessing,
        engine_name: str,
        device: str,
        batch_size: int,
        num_workers: int,
        limits: DecodeLimits,
    ) -> None:
        if batch_size < 1 or num_workers < 0:
            raise ValueError(
                f"batch_size must be >= 1 and num_workers >= 0, got {batch_size}, {num_workers}"
            )
        self._engine = engine
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.preprocessing = preprocessing
        self.engine = engine_name
        self.device = device
        self.dim = engine.dim
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.limits = limits

    @classmethod
    def create(
        cls,
        spec: BackboneSpec,
        *,
        engine: EngineName = "auto",
        device: DeviceName = "auto",
        cache_dir: Path,
        batch_size: int = 32,
        num_workers: int = 2,
        limits: DecodeLimits = DEFAULT_LIMITS,
        onnx_threads: int | None = None,
    ) -> Embedder:
        """Load SPEC's backbone; "auto" is ONNX Runtime on CPU and torch autocast on CUDA.

        ONNX Runtime gets ONNX_THREADS threads, by default one per core; while decode workers
        run, its idle threads sleep instead of spinning, so the workers get their share.
        """
        if engine == "onnx" and device == "cuda":
            raise ValueError(_ONNX_ON_CPU_ONLY)
        resolved_device = _resolve_device(device)
        resolved_engine = _resolve_engine(engine, resolved_device)
        model, preprocessing, weights_id = load_torch_backbone(spec)
        runner: EmbeddingEngine
        if resolved_engine == "onnx":
            onnx_path = ensure_onnx_export(
                model,
                preprocessing,
                cache_dir=Path(cache_dir),
                model_name=spec.model_name,
                weights_id=weights_id,
            )
            threads = onnx_threads or default_onnx_threads()
            runner = OnnxEngine(OnnxModel(onnx_path, threads, allow_spinning=num_workers == 0))
        else:
            runner = TorchEngine(model, resolved_device, preprocessing)
        return cls(
            runner,
            model_name=spec.model_name,
            weights_sha256=weights_id,
            preprocessing=preprocessing,
            engine_name=resolved_engine,
            device=resolved_device,
            batch_size=batch_size,
            num_workers=num_workers,
            limits=limits,
        )

    def embed_batch(self, pixels: np.ndarray) -> np.ndarray:
        """Features of crops decoded by `decode_to_uint8`, stacked as (N,H,W,3) uint8."""
        expected = pixel_batch_shape(self.preprocessing, len(pixels))
        if pixels.dtype != np.uint8 or pixels.shape != expected:
            raise ValueError(
                f"embed_batch takes uint8 crops of shape {expected}, got {pixels.dtype} "
                f"{pixels.shape}"
            )
        return self._engine.embed(torch.from_numpy(np.ascontiguousarray(pixels)))

    def embed_paths(
        self,
        paths: Sequence[Path],
        image_ids: Sequence[str],
        progress: ProgressCallback | None = None,
        features_path: Path | None = None,
    ) -> EmbeddingRun:
        """Embed PATHS (named by IMAGE_IDS); rejected images are listed with their reason.

        With FEATURES_PATH the features are written into a memory-mapped float32 file there
        (the caller removes it), so a region of millions of images holds one batch in
        anonymous memory, not all of its features."""
        if len(paths) != len(image_ids):
            raise ValueError(f"{len(paths)} paths but {len(image_ids)} image ids")
        started = time.perf_counter()
        total = len(paths)
        out: np.ndarray = (
            np.empty((total, self.dim), dtype=np.float32)
            if features_path is None
            else np.lib.format.open_memmap(
                features_path, mode="w+", dtype=np.float32, shape=(total, self.dim)
            )
        )
        filled = 0
        kept_indices: list[int] = []
        rejections: list[tuple[int, str, str]] = []
        done = 0
        for batch in self._batches(paths):
            rejections.extend((i, r.reason, r.detail) for i, r in batch.rejected)
            if batch.images is not None:
                features, finite = self._finite_features(batch.images)
                good = features[finite]
                out[filled : filled + len(good)] = good
                filled += len(good)
                for index, ok in zip(batch.indices, finite, strict=True):
                    if ok:
                        kept_indices.append(index)
                    else:
                        rejections.append((index, NON_FINITE_EMBEDDING, _NON_FINITE_DETAIL))
            done += len(batch.indices) + len(batch.rejected)
            if progress is not None:
                progress(done, total)
        rejections.sort()
        return EmbeddingRun(
            embeddings=out[:filled],
            image_ids=[str(image_ids[i]) for i in kept_indices],
            rejections=pd.DataFrame(
                [(str(image_ids[i]), reason, detail) for i, reason, detail in rejections],
                columns=list(REJECTION_COLUMNS),
                dtype=str,
            ),
            seconds=time.perf_counter() - started,
            engine=self.engine,
            device=self.device,
        )

    def _finite_features(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Features of a batch and, per row, whether all of its values are finite."""
        features = self._engine.embed(images)
        return features, np.isfinite(features).all(axis=1)

    def _batches(self, paths: Sequence[Path]) -> DataLoader:
        # No more workers than batches; none at all for an empty list.
        workers = min(self.num_workers, -(-len(paths) // self.batch_size))
        return DataLoader(
            _ImageFiles([Path(p) for p in paths], self.preprocessing, self.limits),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device == "cuda",
            prefetch_factor=2 if workers else None,
        )


def default_onnx_threads() -> int:
    """One per core this process may run on.

    Measured on 2 cores, ONNX Runtime on both with one decode worker beats one thread
    beside the worker by far: inference keeps both cores busy while decoding is cheap.
    """
    return len(os.sched_getaffinity(0))


def _resolve_device(device: DeviceName) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no CUDA device; use 'cpu' or 'auto'")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    return device


def _resolve_engine(engine: EngineName, device: str) -> str:
    if engine == "auto":
        return "onnx" if device == "cpu" else "torch"
    if engine not in ("onnx", "torch"):
        raise ValueError(f"engine must be 'auto', 'onnx' or 'torch', got {engine!r}")
    if engine == "onnx" and device != "cpu":
        raise ValueError(_ONNX_ON_CPU_ONLY)
    return engine
