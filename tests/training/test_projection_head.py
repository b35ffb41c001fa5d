from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from geotriplet_assets.training.head_file import (
    HeadFileError,
    embed_with_head,
    load_head,
    save_head,
)
from geotriplet_assets.training.projection_head import ProjectionHead


def test_outputs_have_the_embedding_size_and_unit_length() -> None:
    torch.manual_seed(0)
    head = ProjectionHead(48, 32, dropout=0.0)
    out = head(torch.randn(7, 48) * 10)
    assert out.shape == (7, 32)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(7))


def test_hidden_size_defaults_to_twice_the_embedding_size_but_at_least_512() -> None:
    assert ProjectionHead(16, 128).spec.hidden_size == 512
    assert ProjectionHead(16, 512).spec.hidden_size == 1024
    assert ProjectionHead(16, 64, hidden_size=100).mlp[0].out_features == 100


def test_layers_are_those_of_the_original_head() -> None:
    head = ProjectionHead(16, 8, hidden_size=20, dropout=0.25)
    kinds = [type(layer).__name__ for layer in head.mlp]
    assert kinds == ["Linear", "LayerNorm", "GELU", "Dropout", "Linear"]
    assert head.mlp[3].p == 0.25
    assert (head.residual.in_features, head.residual.out_features) == (16, 8)


def test_residual_alone_carries_the_input_when_the_mlp_output_is_zeroed() -> None:
    torch.manual_seed(1)
    head = ProjectionHead(12, 6, dropout=0.0)
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.zero_()
    x = torch.randn(5, 12)
    expected = torch.nn.functional.normalize(head.residual(x), dim=1)
    torch.testing.assert_close(head(x), expected)


def test_saved_head_embeds_like_the_original(tmp_path: Path) -> None:
    torch.manual_seed(2)
    head = ProjectionHead(10, 4, hidden_size=16, dropout=0.3).eval()
    path = tmp_path / "head.pt"
    save_head(head, path)
    features = np.random.default_rng(0).normal(size=(9, 10)).astype(np.float16)
    with torch.no_grad():
        expected = head(torch.from_numpy(features).float()).numpy()
    np.testing.assert_allclose(embed_with_head(path, features), expected, rtol=1e-6, atol=1e-6)
    assert load_head(path).spec == head.spec
    assert '"embedding_size": 4' in (tmp_path / "head.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["head.json", "head.pt"]


def test_embedding_of_the_wrong_width_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "head.pt"
    save_head(ProjectionHead(10, 4), path)
    with pytest.raises(HeadFileError, match="expects 10-d"):
        embed_with_head(path, np.zeros((2, 11), np.float32))


def test_a_file_that_is_not_a_head_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(HeadFileError, match="not a projection head"):
        load_head(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_head(tmp_path / "missing.pt")
