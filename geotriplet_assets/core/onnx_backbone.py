"""Export a backbone to ONNX once (cached on disk) and run it with ONNX Runtime on CPU.

The exported graph takes (N, H, W, 3) uint8 pixels and normalises them itself
(`PixelInputBackbone`), so decode workers hand over a quarter of the bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime as ort

from geotriplet_assets.core.atomic import atomic_path
from geotriplet_assets.core.backbone import Preprocessing

if TYPE_CHECKING:
    import torch

ONNX_OPSET = 18
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
# Part of the cache key: exports with another input format are never reused.
INPUT_FORMAT = "uint8-nhwc-normalised-in-graph"


class OnnxExportError(RuntimeError):
    """torch.onnx could not export the backbone, or the export is unusable."""


def export_onnx(model: torch.nn.Module, preprocessing: Preprocessing, path: Path) -> None:
    """Write MODEL (CPU, eval) with uint8 pixel input as ONNX, dynamic batch axis; atomic."""
    import torch

    from geotriplet_assets.core.pixel_input import PixelInputBackbone, pixel_batch_shape

    example = torch.zeros(pixel_batch_shape(preprocessing, 2), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1)
    model = PixelInputBackbone(model.to("cpu").eval(), preprocessing).eval()
    with atomic_path(path) as temporary, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The dynamo exporter bakes timm's "same" padding as constants; the legacy
        # TorchScript one leaves shape arithmetic in the graph (3-4x slower in ORT).
        onnx_logger = logging.getLogger("torch.onnx")
        level = onnx_logger.level
        onnx_logger.setLevel(logging.ERROR)
        try:
            torch.onnx.export(
                model,
                (example,),
                str(temporary),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                opset_version=ONNX_OPSET,
                dynamo=True,
                external_data=False,
                optimize=True,
                verbose=False,
            )
        except Exception as error:
            raise OnnxExportError(
                f"cannot export {type(model).__name__} to ONNX: {type(error).__name__}: {error}"
            ) from error
        finally:
            onnx_logger.setLevel(level)


def cached_onnx_path(
    cache_dir: Path, model_name: str, weights_id: str, preprocessing: Preprocessing
) -> Path:
    """Where the export of this model, weights and input size lives in CACHE_DIR."""
    import timm
    import torch

    key = "|".join(
        (
            model_name,
            weights_id,
            preprocessing.to_json(),
            INPUT_FORMAT,
            timm.__version__,
            torch.__version__,
        )
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    safe_name = re.sub(r"[^A-Za-z0-9_.-]", "_", model_name)
    _, height, width = preprocessing.input_size
    return cache_dir / f"{safe_name}-{height}x{width}-{digest}.onnx"


def ensure_onnx_export(
    model: torch.nn.Module,
    preprocessing: Preprocessing,
    *,
    cache_dir: Path,
    model_name: str,
    weights_id: str,
) -> Path:
    """The cached ONNX file for MODEL, exporting it on the first call."""
    path = cached_onnx_path(cache_dir, model_name, weights_id, preprocessing)
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        export_onnx(model, preprocessing, path)
    return path


class OnnxBackbone:
    """An exported backbone on ONNX Runtime's CPU provider: pixels (N,H,W,3) -> (N,D)."""

    def __init__(
        self, path: Path, threads: int | None = None, *, allow_spinning: bool = True
    ) -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        # Spinning threads burn the cores that decode workers need between batches.
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        try:
            self._session = ort.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise OnnxExportError(f"ONNX Runtime cannot load {path}: {error}") from error
        self.path = path
        self._input = self._session.get_inputs()[0].name
        self.dim = self._output_dim()

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """Features of (N, H, W, 3) uint8 crops as `decode_to_uint8` gives them."""
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"{self.path.name} takes (N, H, W, 3) uint8 pixels, got {pixels.dtype} "
                f"{pixels.shape}"
            )
        batch = np.ascontiguousarray(pixels)
        (features,) = self._session.run(None, {self._input: batch})
        return np.asarray(features, dtype=np.float32)

    def _output_dim(self) -> int:
        dim = self._session.get_outputs()[0].shape[-1]
        if isinstance(dim, int):
            return dim
        shape = [int(s) if isinstance(s, int) else 1 for s in self._session.get_inputs()[0].shape]
        return int(self.embed(np.zeros(shape, dtype=np.uint8)).shape[-1])
