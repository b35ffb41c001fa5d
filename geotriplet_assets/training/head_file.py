"""The trained head as a standalone file (head.pt): weights plus the spec needed to rebuild
it, and embedding with it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from geotriplet_assets.paths import atomic_path
from geotriplet_assets.training.projection_head import HeadSpec, ProjectionHead

HEAD_FILE = "head.pt"
EMBED_BATCH_ROWS = 8192


class HeadFileError(ValueError):
    """A head file that cannot be loaded."""


def save_head(head: ProjectionHead, path: Path) -> None:
    """Write HEAD to PATH (torch) and its spec to PATH.json, each atomically."""
    payload = {"spec": head.spec.as_dict(), "state_dict": head.state_dict()}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    with atomic_path(path.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(head.spec.as_dict(), indent=2), encoding="utf-8")


def load_head(path: Path) -> ProjectionHead:
    """The head saved at PATH, in eval mode on the CPU."""
    if not path.is_file():
        raise FileNotFoundError(
            f"head file {path} does not exist: train the projection head first"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        head = ProjectionHead.from_spec(HeadSpec(**payload["spec"]))
        head.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        raise HeadFileError(f"{path} is not a projection head file: {error}") from error
    return head.eval()


@torch.no_grad()
def embed_array(head: ProjectionHead, embeddings: np.ndarray) -> np.ndarray:
    """(N, E) float32 unit vectors of (N, D) backbone embeddings, batched on the head's device."""
    device = next(head.parameters()).device
    was_training = head.training
    head.eval()
    outputs = [
        head(
            torch.from_numpy(np.array(embeddings[start : start + EMBED_BATCH_ROWS]))
            .to(device)
            .float()
        )
        .float()
        .cpu()
        .numpy()
        for start in range(0, len(embeddings), EMBED_BATCH_ROWS)
    ]
    head.train(was_training)
    if not outputs:
        return np.zeros((0, head.spec.embedding_size), dtype=np.float32)
    return np.concatenate(outputs)


def embed_with_head(head_path: Path, embeddings: np.ndarray) -> np.ndarray:
    """Embed backbone EMBEDDINGS with the head saved at HEAD_PATH."""
    head = load_head(head_path)
    if np.shape(embeddings)[-1] != head.spec.input_dim:
        raise HeadFileError(
            f"{head_path} expects {head.spec.input_dim}-d backbone embeddings, "
            f"got {np.shape(embeddings)[-1]}-d"
        )
    return embed_array(head, np.asarray(embeddings))


def head_projection(head_path: Path) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
    """The head saved at HEAD_PATH as a function of (n, D) backbone rows to (n, E) unit
    vectors, and E; rows of another D are refused with the head's expected size."""
    head = load_head(head_path)

    def project(rows: np.ndarray) -> np.ndarray:
        if np.shape(rows)[-1] != head.spec.input_dim:
            raise HeadFileError(
                f"{head_path} expects {head.spec.input_dim}-d backbone embeddings, "
                f"got {np.shape(rows)[-1]}-d"
            )
        return embed_array(head, rows)

    return project, head.spec.embedding_size
