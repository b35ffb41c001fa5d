from __future__ import annotations

import pytest

from geotriplet_assets.training.schedule import WarmupCosineSchedule


def test_warmup_rises_linearly_to_the_base_rate() -> None:
    schedule = WarmupCosineSchedule(warmup_steps=4, total_steps=12)
    assert [schedule(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]


def test_cosine_decay_falls_from_one_to_zero_after_warmup() -> None:
    schedule = WarmupCosineSchedule(warmup_steps=2, total_steps=10)
    assert schedule(2) == 1.0
    assert schedule(6) == pytest.approx(0.5)
    assert schedule(10) == pytest.approx(0.0)
    decay = [schedule(s) for s in range(2, 11)]
    assert decay == sorted(decay, reverse=True)


def test_without_warmup_the_schedule_starts_at_the_base_rate() -> None:
    schedule = WarmupCosineSchedule(warmup_steps=0, total_steps=5)
    assert schedule(0) == 1.0
    assert schedule(50) == pytest.approx(0.0)
