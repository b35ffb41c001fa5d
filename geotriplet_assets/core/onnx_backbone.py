"""Export a backbone to ONNX once (cached on disk) and run it with ONNX Runtime on CPU."""

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


class OnnxExportError(RuntimeError):
    """torch.onnx could not export the backbone, or the export is unusable."""


def export_onnx(model: torch.nn.Module, preprocessing: Preprocessing, path: Path) -> None:
    """Write MODEL (CPU, eval) as ONNX with a dynamic batch axis; atomic."""
    import torch

    example = torch.zeros((2, *preprocessing.input_size), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1)
    model = model.to("cpu").eval()
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
        (model_name, weights_id, preprocessing.to_json(), timm.__version__, torch.__version__)
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
    """An ONNX backbone on ONNX Runtime's CPU provider: images (N,3,H,W) -> features (N,D)."""

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
        self._input = self._session.get_inputs()[0].name
        self.path = path
        self.dim = self._output_dim()

    def embed(self, batch: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(batch, dtype=np.float32)
        (features,) = self._session.run(None, {self._input: images})
        return np.asarray(features, dtype=np.float32)

    def _output_dim(self) -> int:
        dim = self._session.get_outputs()[0].shape[-1]
        if isinstance(dim, int):
            return dim
        shape = [int(s) if isinstance(s, int) else 1 for s in self._session.get_inputs()[0].shape]
        return int(self.embed(np.zeros(shape, dtype=np.float32)).shape[-1])
