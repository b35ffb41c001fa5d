"""Per-band statistics of the triplets of one epoch: share, mean reward, success rate."""

from __future__ import annotations

from typing import Any

import numpy as np


class BandStatistics:
    """Accumulates, per band, how many triplets it produced and how they fared.

    Success rate: the fraction of a band's triplets that already satisfied the
    margin (zero loss), i.e. taught the head nothing.
    """

    def __init__(self, num_bands: int) -> None:
        self.num_bands = num_bands
        self.reset()

    def reset(self) -> None:
        self.counts = np.zeros(self.num_bands, dtype=np.int64)
        self.reward_sums = np.zeros(self.num_bands)
        self.satisfied = np.zeros(self.num_bands, dtype=np.int64)

    def add(self, bands: np.ndarray, rewards: np.ndarray, satisfied: np.ndarray) -> None:
        self.counts += np.bincount(bands, minlength=self.num_bands)
        self.reward_sums += np.bincount(bands, weights=rewards, minlength=self.num_bands)
        self.satisfied += np.bincount(bands, weights=satisfied, minlength=self.num_bands).astype(
            np.int64
        )

    def summary(self) -> dict[str, list[float]]:
        """share, mean_reward and success_rate per band (NaN for a band without triplets)."""
        total = self.counts.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_reward = self.reward_sums / self.counts
            success_rate = self.satisfied / self.counts
        share = self.counts / total if total else np.zeros(self.num_bands)
        return {
            "share": share.tolist(),
            "mean_reward": mean_reward.tolist(),
            "success_rate": success_rate.tolist(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts.tolist(),
            "reward_sums": self.reward_sums.tolist(),
            "satisfied": self.satisfied.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = np.asarray(state["counts"], dtype=np.int64)
        self.reward_sums = np.asarray(state["reward_sums"], dtype=np.float64)
        self.satisfied = np.asarray(state["satisfied"], dtype=np.int64)
