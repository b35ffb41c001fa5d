"""The models' ONNX contract and how they run: a graph that takes (N, H, W, 3) uint8 RGB crops
as input `images` and gives (N, D) float32 features as output `embeddings`, on ONNX Runtime's
CPU provider.

The embedding backbone and a bundle's serving model (backbone + head) both have this form.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
INPUT_TYPE = "tensor(uint8)"
OUTPUT_TYPE = "tensor(float)"


class OnnxModelError(RuntimeError):
    """An ONNX file that ONNX Runtime cannot load or that does not have the contract's form."""


class OnnxModel:
    """A loaded model: `embed` maps (N, H, W, 3) uint8 crops to (N, dim) float32."""

    def __init__(
        self, path: Path, threads: int | None = None, *, allow_spinning: bool = True
    ) -> None:
        """THREADS intra-op threads (default: every core). Without ALLOW_SPINNING idle threads
        sleep instead of spinning, leaving the cores to decode workers between batches."""
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        if threads is not None:
            options.intra_op_num_threads = threads
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        try:
            self._session = ort.InferenceSession(
                os.fspath(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own types, not exported
            raise OnnxModelError(f"ONNX Runtime cannot load {path}: {error}") from error
        self.path = Path(path)
        self._check_form()
        self.dim = self._output_dim()

    def embed(self, pixels: np.ndarray) -> np.ndarray:
        """Features of (N, H, W, 3) uint8 crops as `image_decode.decode_to_uint8` gives them."""
        if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
            raise ValueError(
                f"{self.path.name} takes (N, H, W, 3) uint8 pixels, got {pixels.dtype} "
                f"{pixels.shape}"
            )
        batch = np.ascontiguousarray(pixels)
        (features,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        return np.asarray(features, dtype=np.float32)

    def _check_form(self) -> None:
        inputs = {node.name: node for node in self._session.get_inputs()}
        outputs = {node.name: node for node in self._session.get_outputs()}
        if INPUT_NAME not in inputs or inputs[INPUT_NAME].type != INPUT_TYPE:
            raise OnnxModelError(
                f"{self.path}: the model needs a uint8 input named {INPUT_NAME!r}"
            )
        if OUTPUT_NAME not in outputs:
            raise OnnxModelError(f"{self.path}: the model has no output named {OUTPUT_NAME!r}")
        if outputs[OUTPUT_NAME].type != OUTPUT_TYPE:
            raise OnnxModelError(
                f"{self.path}: the output {OUTPUT_NAME!r} is {outputs[OUTPUT_NAME].type}, "
                "expected float32"
            )

    def _output_dim(self) -> int:
        output = next(node for node in self._session.get_outputs() if node.name == OUTPUT_NAME)
        dim = output.shape[-1]
        if isinstance(dim, int):
            return dim
        node = next(node for node in self._session.get_inputs() if node.name == INPUT_NAME)
        shape = [int(s) if isinstance(s, int) else 1 for s in node.shape]
        return int(self.embed(np.zeros(shape, dtype=np.uint8)).shape[-1])
