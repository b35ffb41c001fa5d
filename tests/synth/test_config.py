"""SynthConfig presets and validation."""

from __future__ import annotations

import pytest

from geotriplet_assets.synth import DEFAULT_CITIES, SynthConfig


def test_presets() -> None:
    tiny, demo = SynthConfig.tiny(), SynthConfig.demo()
    assert (tiny.cities, tiny.targets_per_city, tiny.image_size) == (2, 8, 256)
    assert demo.image_size == 640 and demo.cities == len(DEFAULT_CITIES) == 8
    images = demo.cities * (demo.targets_per_city * (demo.min_views + demo.max_views) / 2)
    assert 2000 <= images + demo.cities * demo.distractors_per_city <= 3000
    assert SynthConfig.tiny(seed=3).seed == 3
    large = SynthConfig.preset("large", seed=11)
    assert (large.seed, large.cities * large.targets_per_city) == (11, 1520)
    assert SynthConfig.preset("demo") == demo
    with pytest.raises(ValueError, match="unknown synth preset 'huge'"):
        SynthConfig.preset("huge")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seed", -1),
        ("seed", 1.5),
        ("cities", 0),
        ("cities", len(DEFAULT_CITIES) + 1),
        ("targets_per_city", 0),
        ("distractors_per_city", -1),
        ("min_views", 1),
        ("max_views", 13),
        ("image_size", 32),
        ("image_size", True),
        ("short_form_fraction", 1.5),
        ("alignment_line_fraction", -0.1),
        ("alignment_line_fraction", "0.3"),
    ],
)
def test_invalid_fields_are_named(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"SynthConfig\.{field} "):
        SynthConfig.tiny(**{field: value})


def test_max_views_below_min_views_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"SynthConfig\.max_views"):
        SynthConfig(min_views=5, max_views=4)


def test_integer_fractions_are_accepted() -> None:
    assert SynthConfig(short_form_fraction=1).short_form_fraction == 1
