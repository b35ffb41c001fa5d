"""Target planning: ids, view counts, file forms and independence from other cities."""

from __future__ import annotations

from itertools import pairwise

from geotriplet_assets.synth import DEFAULT_CITIES, SynthConfig
from geotriplet_assets.synth.layout import plan_city


def test_ids_views_and_forms_follow_the_config() -> None:
    config = SynthConfig(targets_per_city=20, distractors_per_city=7, short_form_fraction=0.3)
    plans = plan_city(DEFAULT_CITIES[2], config)
    assert [p.target_id for p in plans] == list(range(1, 28))
    assert sum(p.is_distractor for p in plans) == 7
    assert all(2 <= p.view_count <= 7 for p in plans if not p.is_distractor)
    images = sum(p.view_count for p in plans)
    short = sum(sum(p.short_form) for p in plans)
    assert short == round(0.3 * images)
    with_a = sum(sum(p.alignment_line) for p in plans)
    assert with_a == round(config.alignment_line_fraction * (images - short))
    assert not any(
        s and a for p in plans for s, a in zip(p.short_form, p.alignment_line, strict=True)
    )


def test_neighbours_in_a_row_share_facades() -> None:
    plans = plan_city(DEFAULT_CITIES[0], SynthConfig.tiny())
    shared = sum(a.right == b.geometry and b.left == a.geometry for a, b in pairwise(plans))
    assert shared >= len(plans) // 2


def test_a_city_plan_does_not_depend_on_other_settings_of_the_run() -> None:
    city = DEFAULT_CITIES[1]
    alone = plan_city(city, SynthConfig(cities=2))
    with_more = plan_city(city, SynthConfig(cities=8))
    assert alone == with_more
    other_seed = plan_city(city, SynthConfig(cities=2, seed=8))
    assert [p.geometry for p in other_seed] != [p.geometry for p in alone]
