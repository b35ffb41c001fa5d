"""Size and seed of a synthetic city, with presets for tests and for the demo."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from geotriplet_assets.synth.cities import DEFAULT_CITIES

MAX_VIEWS_LIMIT = 12
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 64, 2048
SYNTH_PRESETS = ("tiny", "demo", "large")


@dataclass(frozen=True)
class SynthConfig:
    """What to generate; the same config and seed always give byte-identical files.

    targets_per_city targets are seen min_views..max_views times; distractors_per_city
    targets are seen once. short_form_fraction of the images get the README's short
    form; alignment_line_fraction of the long-form ones get an `a` line.
    """

    seed: int = 7
    cities: int = len(DEFAULT_CITIES)
    targets_per_city: int = 60
    distractors_per_city: int = 40
    min_views: int = 2
    max_views: int = 7
    image_size: int = 640
    short_form_fraction: float = 0.0
    alignment_line_fraction: float = 0.3

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            expected = float if field.type == "float" else int
            if isinstance(value, bool) or not isinstance(value, (expected, int)):
                raise ValueError(
                    f"SynthConfig.{field.name} must be {expected.__name__}, got {value!r}"
                )
        _check_range("seed", self.seed, 0, 2**63 - 1)
        _check_range("cities", self.cities, 1, len(DEFAULT_CITIES))
        _check_range("targets_per_city", self.targets_per_city, 1, 100_000)
        _check_range("distractors_per_city", self.distractors_per_city, 0, 100_000)
        _check_range("min_views", self.min_views, 2, MAX_VIEWS_LIMIT)
        _check_range("max_views", self.max_views, self.min_views, MAX_VIEWS_LIMIT)
        _check_range("image_size", self.image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
        _check_range("short_form_fraction", self.short_form_fraction, 0.0, 1.0)
        _check_range("alignment_line_fraction", self.alignment_line_fraction, 0.0, 1.0)

    @classmethod
    def tiny(cls, **overrides: Any) -> SynthConfig:
        """2 cities x 8 targets (+2 distractors) at 256 px: about 80 images, for tests."""
        base = cls(cities=2, targets_per_city=8, distractors_per_city=2, image_size=256)
        return replace(base, **overrides)

    @classmethod
    def demo(cls, **overrides: Any) -> SynthConfig:
        """8 cities x 60 targets (+40 distractors) at 640 px: about 2 500 images."""
        return replace(cls(), **overrides)

    @classmethod
    def large(cls, **overrides: Any) -> SynthConfig:
        """8 cities x 190 targets (+40 distractors) at 640 px: about 7 000 images, the
        sampling ablation's second, larger city."""
        return replace(cls(targets_per_city=190), **overrides)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SynthConfig:
        """The named preset (tiny, demo or large)."""
        if name not in SYNTH_PRESETS:
            raise ValueError(f"unknown synth preset {name!r}; one of {list(SYNTH_PRESETS)}")
        return getattr(cls, name)(**overrides)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"SynthConfig.{name} must be in [{low}, {high}], got {value!r}")
