"""What one training run needs to know: the tunable head parameters and the run settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geotriplet_assets.bundle.locate import DEFAULT_CLUSTER_RADIUS_M, DEFAULT_LOCATE_K

SamplingMode = Literal[
    "ucb", "ucb_inbatch", "ucb_semihard", "uniform_bands", "random", "pml_semihard"
]
SAMPLING_MODES: tuple[SamplingMode, ...] = (
    "ucb",
    "ucb_inbatch",
    "ucb_semihard",
    "uniform_bands",
    "random",
    "pml_semihard",
)
"""How negatives are chosen: UCB over distance bands rewarded by the normalised loss (the
original project's), the same plus in-batch semi-hard negatives mined among the step's images
(the default), or rewarded by the semi-hard indicator; uniformly over the bands; uniformly at
random; or random triplets re-mined in the batch by pytorch-metric-learning's
BatchEasyHardMiner (easy positives, semi-hard negatives: a reference for the ablation)."""


class TrainingSettingsError(ValueError):
    """A training parameter or setting that cannot be used."""


@dataclass(frozen=True)
class HeadParams:
    """Hyperparameters of the head and its optimisation (the Optuna search space)."""

    lr: float = 1e-3
    weight_decay: float = 1e-4
    embedding_size: int = 128
    hidden_size: int | None = None
    dropout: float = 0.1
    margin: float = 0.3
    num_difficulty_levels: int = 5
    ucb_alpha: float = 2.0
    batch_size: int = 256
    warmup_epochs: int = 1

    def __post_init__(self) -> None:
        positive = {
            "lr": self.lr,
            "embedding_size": self.embedding_size,
            "margin": self.margin,
            "num_difficulty_levels": self.num_difficulty_levels,
            "ucb_alpha": self.ucb_alpha,
            "batch_size": self.batch_size,
        }
        for name, value in positive.items():
            if not value > 0:
                raise TrainingSettingsError(f"HeadParams.{name} must be positive, got {value!r}")
        if self.hidden_size is not None and self.hidden_size < 1:
            raise TrainingSettingsError(
                f"HeadParams.hidden_size must be positive or None, got {self.hidden_size!r}"
            )
        if not 0 <= self.dropout < 1:
            raise TrainingSettingsError(
                f"HeadParams.dropout must be in [0, 1), got {self.dropout}"
            )
        if self.weight_decay < 0 or self.warmup_epochs < 0:
            raise TrainingSettingsError(
                "HeadParams.weight_decay and warmup_epochs must be non-negative, got "
                f"{self.weight_decay!r} and {self.warmup_epochs!r}"
            )


@dataclass(frozen=True)
class TrackingSettings:
    """Weights & Biases run settings; offline (no account, no network) unless told otherwise."""

    project: str = "geo-triplet-net"
    experiment_name: str | None = None
    offline: bool = True
    save_dir: Path = Path("wandb")
    group: str | None = None
    enabled: bool = True


@dataclass(frozen=True)
class TrainingSettings:
    """How a run is carried out.

    num_threads, when set, is the CPU thread count of torch during the run (tiny heads
    train faster on one thread than on two contended ones). locate_k and
    locate_cluster_radius_m are how the evaluation locates each query from its best hits, as
    `POST /locate` does (`bundle.locate`). eval_queries caps the query images of each
    evaluation (a sample drawn with seed; None: every image).
    """

    max_epochs: int = 30
    samples_per_epoch: int = 20_000
    seed: int = 42
    difficulty_update_freq: int = 10
    precision: str = "16-mixed"
    sampling: SamplingMode = "ucb_inbatch"
    auto_batch_size: bool = False
    auto_batch_size_mode: Literal["power", "binsearch"] = "power"
    auto_batch_size_max_trials: int = 4
    early_stopping_patience: int = 5
    accelerator: str = "auto"
    num_threads: int | None = None
    locate_k: int = DEFAULT_LOCATE_K
    locate_cluster_radius_m: float = DEFAULT_CLUSTER_RADIUS_M
    eval_queries: int | None = 10_000
    recall_radius_m: float = 25.0
    tracking: TrackingSettings = field(default_factory=TrackingSettings)

    def __post_init__(self) -> None:
        for name in ("max_epochs", "samples_per_epoch", "difficulty_update_freq", "locate_k"):
            if getattr(self, name) < 1:
                raise TrainingSettingsError(
                    f"TrainingSettings.{name} must be positive, got {getattr(self, name)!r}"
                )
        if not self.recall_radius_m > 0:
            raise TrainingSettingsError(
                f"TrainingSettings.recall_radius_m must be positive, got {self.recall_radius_m!r}"
            )
        if not self.locate_cluster_radius_m > 0:
            raise TrainingSettingsError(
                "TrainingSettings.locate_cluster_radius_m must be positive, "
                f"got {self.locate_cluster_radius_m!r}"
            )
        if self.eval_queries is not None and self.eval_queries < 1:
            raise TrainingSettingsError(
                "TrainingSettings.eval_queries must be positive or None, "
                f"got {self.eval_queries!r}"
            )
        if self.num_threads is not None and self.num_threads < 1:
            raise TrainingSettingsError(
                f"TrainingSettings.num_threads must be positive or None, got {self.num_threads!r}"
            )
        if self.sampling not in SAMPLING_MODES:
            raise TrainingSettingsError(
                f"TrainingSettings.sampling must be one of {SAMPLING_MODES}, got {self.sampling!r}"
            )
        if self.auto_batch_size_mode not in ("power", "binsearch"):
            raise TrainingSettingsError(
                "TrainingSettings.auto_batch_size_mode must be 'power' or 'binsearch', "
                f"got {self.auto_batch_size_mode!r}"
            )
