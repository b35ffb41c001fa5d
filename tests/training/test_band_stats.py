from __future__ import annotations

import math

import numpy as np

from geotriplet_assets.training.band_stats import BandStatistics


def test_share_mean_reward_and_success_rate_per_band() -> None:
    stats = BandStatistics(3)
    stats.add(np.array([0, 0, 1, 1]), np.array([0.0, 1.0, 0.5, 0.0]), np.array([1, 0, 0, 1]))
    stats.add(np.array([1]), np.array([1.0]), np.array([0]))
    summary = stats.summary()
    assert summary["share"] == [0.4, 0.6, 0.0]
    assert summary["mean_reward"][:2] == [0.5, 0.5]
    assert summary["success_rate"][:2] == [0.5, 1 / 3]
    assert math.isnan(summary["mean_reward"][2])


def test_state_round_trips_and_reset_clears() -> None:
    stats = BandStatistics(2)
    stats.add(np.array([1]), np.array([0.25]), np.array([0]))
    restored = BandStatistics(2)
    restored.load_state_dict(stats.state_dict())
    assert restored.state_dict() == stats.state_dict()
    assert restored.summary()["share"] == [0.0, 1.0]
    stats.reset()
    assert stats.summary()["share"] == [0.0, 0.0]
