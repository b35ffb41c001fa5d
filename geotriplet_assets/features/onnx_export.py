"""Export a torch model to ONNX in the form `bundle.onnx_model` runs, and cache backbone exports.

The exported graph takes (N, H, W, 3) uint8 pixels and normalises them itself
(`PixelInputBackbone`), so decode workers hand over a quarter of the bytes.
"""

from __future__ import annotations

import hashlib
import logging
import re
import warnings
from importlib import metadata
from pathlib import Path

import torch

from geotriplet_assets.bundle.onnx_model import INPUT_NAME, OUTPUT_NAME
from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.features.pixel_input import PixelInputBackbone, pixel_batch_shape
from geotriplet_assets.paths import atomic_path

ONNX_OPSET = 18
# Part of the cache key: exports with another input format are never reused.
INPUT_FORMAT = "uint8-nhwc-normalised-in-graph"


class OnnxExportError(RuntimeError):
    """torch.onnx could not export the backbone, or the export is unusable."""


def export_onnx(model: torch.nn.Module, preprocessing: Preprocessing, path: Path) -> None:
    """Write MODEL (CPU, eval) with uint8 pixel input as ONNX, dynamic batch axis; atomic."""
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
    key = "|".join(
        (
            model_name,
            weights_id,
            preprocessing.to_json(),
            INPUT_FORMAT,
            metadata.version("timm"),
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
