"""The projection head: an MLP plus a linear residual, mapping features to unit vectors."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class HeadSpec:
    """Everything needed to rebuild a head before loading its weights."""

    input_dim: int
    embedding_size: int
    hidden_size: int
    dropout: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_hidden_size(embedding_size: int) -> int:
    return max(2 * embedding_size, 512)


class ProjectionHead(nn.Module):
    """Linear, LayerNorm, GELU, Dropout, Linear; plus a Linear residual; L2-normalised."""

    def __init__(
        self,
        input_dim: int,
        embedding_size: int,
        hidden_size: int | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        hidden = hidden_size or default_hidden_size(embedding_size)
        self.spec = HeadSpec(input_dim, embedding_size, hidden, float(dropout))
        self.mlp = nn.Sequential(
            nn.Linear(input_dim, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, embedding_size),
        )
        self.residual = nn.Linear(input_dim, embedding_size)

    @classmethod
    def from_spec(cls, spec: HeadSpec) -> ProjectionHead:
        return cls(spec.input_dim, spec.embedding_size, spec.hidden_size, spec.dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return functional.normalize(self.mlp(features) + self.residual(features), dim=-1)
