"""The models' ONNX form, as both the embedding backbone and a bundle's serving model use it:
uint8 (N, H, W, 3) `images` in, float32 (N, D) `embeddings` out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from geotriplet_assets.bundle.onnx_model import OnnxModel, OnnxModelError
from tests.factories.bundles import embed_with_model, write_tiny_model


def test_embeds_uint8_crops_into_features_of_its_dimension(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    write_tiny_model(path, size=32, dim=12)
    model = OnnxModel(path, threads=1, allow_spinning=False)
    assert model.dim == 12
    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    features = model.embed(pixels)
    assert features.shape == (3, 12) and features.dtype == np.float32
    np.testing.assert_array_equal(features, embed_with_model(path, pixels))
    with pytest.raises(ValueError, match=r"takes \(N, H, W, 3\) uint8 pixels"):
        model.embed(pixels.astype(np.float32))


def _graph_model(path: Path, input_type: int, input_name: str, output_name: str) -> None:
    nodes = [helper.make_node("Identity", [input_name], [output_name])]
    graph = helper.make_graph(
        nodes,
        "identity",
        [helper.make_tensor_value_info(input_name, input_type, ["N", 4])],
        [helper.make_tensor_value_info(output_name, input_type, ["N", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save(model, str(path))


@pytest.mark.parametrize(
    ("input_type", "input_name", "output_name", "message"),
    [
        (TensorProto.FLOAT, "images", "embeddings", "needs a uint8 input named 'images'"),
        (TensorProto.UINT8, "pixels", "embeddings", "needs a uint8 input named 'images'"),
        (TensorProto.UINT8, "images", "features", "has no output named 'embeddings'"),
        (TensorProto.UINT8, "images", "embeddings", "expected float32"),
    ],
)
def test_a_model_of_another_form_is_refused_with_the_reason(
    tmp_path: Path, input_type: int, input_name: str, output_name: str, message: str
) -> None:
    path = tmp_path / "other.onnx"
    _graph_model(path, input_type, input_name, output_name)
    with pytest.raises(OnnxModelError, match=message):
        OnnxModel(path)


def test_a_file_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not onnx")
    with pytest.raises(OnnxModelError, match="ONNX Runtime cannot load"):
        OnnxModel(path)
