"""Text of the synthetic `.txt` files, read back by the project's metadata parser."""

from __future__ import annotations

import pytest

from geotriplet_assets.catalogue.metadata import parse_metadata
from geotriplet_assets.synth.metadata_writer import (
    ImageRecord,
    image_stem,
    long_form_text,
    short_form_text,
)

RECORD = ImageRecord(
    dataset_id=3,
    target_id=87241,
    patch_id=12,
    street_view_id=4567,
    target_lat=48.85661234,
    target_lon=2.35221234,
    target_height=47.5,
    normal=(0.6, 0.8, 0.0),
    sv_lat=48.8567,
    sv_lon=2.3521,
    sv_height=37.4,
    distance=18.25,
    heading=212.5,
    pitch=11.25,
)


def test_stem_pads_ids_like_the_dataset() -> None:
    assert image_stem(RECORD, 2) == "0003_0087241_0000012_2"


def test_long_form_has_17_numbers_and_parses_back() -> None:
    text = long_form_text(RECORD)
    tokens = text.split()
    assert text.count("\n") == 1 and tokens[0] == "d" and len(tokens) == 18
    assert tokens[1:4] == ["0003", "0087241", "0000012"]
    meta = parse_metadata(text)
    assert meta.form == "long"
    assert (meta.dataset_id, meta.target_id, meta.patch_id, meta.street_view_id) == (
        3,
        87241,
        12,
        4567,
    )
    assert meta.lat == pytest.approx(48.85661234, abs=1e-8)
    assert meta.lon == pytest.approx(2.35221234, abs=1e-8)
    assert (meta.normal_x, meta.normal_y, meta.normal_z) == (0.6, 0.8, 0.0)
    assert (meta.distance, meta.heading, meta.pitch, meta.roll) == (18.25, 212.5, 11.25, 0.0)


def test_alignment_line_has_40_numbers() -> None:
    text = long_form_text(RECORD, [float(i) for i in range(40)])
    lines = text.splitlines()
    assert len(lines) == 2 and lines[1].split()[0] == "a" and len(lines[1].split()) == 41
    assert parse_metadata(text).target_id == 87241
    with pytest.raises(ValueError, match="40 values"):
        long_form_text(RECORD, [1.0, 2.0])


def test_short_form_is_d_then_c() -> None:
    text = short_form_text(RECORD)
    assert text.splitlines() == ["d 0003 0087241 0000012", "c 48.85661234 2.35221234"]
    meta = parse_metadata(text)
    assert meta.form == "short" and meta.lat == pytest.approx(48.85661234)
