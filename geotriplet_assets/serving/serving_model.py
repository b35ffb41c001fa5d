"""The serving model: backbone and trained head exported together as one ONNX graph.

Input: (N, H, W, 3) uint8 crops as `bundle.image_decode.decode_to_uint8` gives them; output:
(N, E) float32 unit vectors in the head's embedding space. The service needs nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geotriplet_assets.bundle.checksums import file_sha256
from geotriplet_assets.bundle.image_decode import ImageRejected, decode_to_uint8
from geotriplet_assets.bundle.onnx_model import OnnxModel
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing
from geotriplet_assets.features.backbone import BackboneSpec, load_torch_backbone
from geotriplet_assets.features.onnx_export import export_onnx
from geotriplet_assets.features.pixel_input import PixelInputBackbone
from geotriplet_assets.training.head_file import HeadFileError, load_head

PARITY_BATCH = 8


@dataclass(frozen=True)
class ServingNetwork:
    """The torch backbone and head, with what the bundle's manifest says about them."""

    backbone: torch.nn.Module
    head: torch.nn.Module
    preprocessing: Preprocessing
    backbone_name: str
    weights_id: str
    head_sha256: str
    embedding_dim: int

    def pixel_model(self) -> torch.nn.Module:
        """uint8 (N, H, W, 3) -> unit vectors: what the ONNX export computes."""
        return PixelInputBackbone(
            torch.nn.Sequential(self.backbone, self.head), self.preprocessing
        ).eval()

    def model_info(self) -> dict[str, object]:
        return {
            "backbone": self.backbone_name,
            "weights_sha256": self.weights_id,
            "head_sha256": self.head_sha256,
            "embedding_dim": self.embedding_dim,
            "input_size": list(self.preprocessing.input_size),
        }


def load_serving_network(spec: BackboneSpec, head_path: Path) -> ServingNetwork:
    """The backbone of SPEC and the head at HEAD_PATH, checked to fit together."""
    backbone, preprocessing, weights_id = load_torch_backbone(spec)
    head = load_head(head_path)
    features = int(backbone.num_features)
    if head.spec.input_dim != features:
        raise HeadFileError(
            f"{head_path} was trained on {head.spec.input_dim}-d features but "
            f"{spec.model_name} gives {features}-d: train the projection head again"
        )
    return ServingNetwork(
        backbone=backbone,
        head=head,
        preprocessing=preprocessing,
        backbone_name=spec.model_name,
        weights_id=weights_id,
        head_sha256=file_sha256(head_path),
        embedding_dim=head.spec.embedding_size,
    )


def export_serving_model(network: ServingNetwork, path: Path) -> None:
    """Write NETWORK as ONNX with uint8 pixel input to PATH (atomically)."""
    export_onnx(torch.nn.Sequential(network.backbone, network.head), network.preprocessing, path)


def decode_parity_images(
    paths: Sequence[Path], preprocessing: Preprocessing, limits: DecodeLimits, count: int
) -> np.ndarray:
    """Up to COUNT decodable images of PATHS as a (N, H, W, 3) uint8 batch."""
    crops = []
    for path in paths:
        try:
            crops.append(decode_to_uint8(path, preprocessing, limits))
        except ImageRejected:
            continue
        if len(crops) == count:
            break
    if not crops:
        raise ValueError("no decodable image to compare ONNX Runtime with PyTorch on")
    return np.stack(crops)


def synthetic_parity_images(preprocessing: Preprocessing, count: int, seed: int = 0) -> np.ndarray:
    """COUNT seeded (N, H, W, 3) uint8 images, gradients under noise, for the parity check
    when no photo is on disk: both runtimes see the same pixels, which is all it compares."""
    height, width = preprocessing.input_size[-2:]
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    images = rng.normal(0, 40, size=(count, height, width, 3)).astype(np.float32)
    images += ramp * rng.uniform(0.2, 1.0, size=(count, 1, 1, 3)).astype(np.float32)
    return np.clip(images, 0, 255).astype(np.uint8)


@torch.no_grad()
def parity_max_abs_diff(network: ServingNetwork, onnx_path: Path, pixels: np.ndarray) -> float:
    """Largest |ONNX Runtime - PyTorch| over every output value for PIXELS."""
    reference = network.pixel_model()
    session = OnnxModel(onnx_path)
    worst = 0.0
    for start in range(0, len(pixels), PARITY_BATCH):
        batch = pixels[start : start + PARITY_BATCH]
        expected = reference(torch.from_numpy(batch)).numpy()
        worst = max(worst, float(np.abs(session.embed(batch) - expected).max()))
    return worst
