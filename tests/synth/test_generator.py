"""End-to-end tests of the synthetic city on the tiny preset, written to real folders."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geotriplet_assets.catalogue.metadata import parse_metadata
from geotriplet_assets.geodesy import great_circle_m
from geotriplet_assets.synth import DEFAULT_CITIES, SynthConfig, generate_city
from geotriplet_assets.synth.output_dir import INCOMPLETE_NAME, MANIFEST_NAME, read_manifest

TINY = SynthConfig.tiny(short_form_fraction=0.25, alignment_line_fraction=0.5)
SMALL = SynthConfig.tiny(targets_per_city=3, distractors_per_city=1)
CITIES = {city.dataset_id: city for city in DEFAULT_CITIES}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2, dlon = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.sin(dlon) * math.cos(phi2)
    x = math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlon)
    return math.degrees(math.atan2(y, x)) % 360.0


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "city"
    generate_city(out, TINY)
    return out


@pytest.fixture(scope="module")
def texts(city: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="ascii") for p in sorted(city.glob("*/*.txt"))}


def test_summary_and_manifest_match_the_files(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    summary = generate_city(
        tmp_path / "out", SynthConfig.tiny(), progress=lambda d, t: calls.append((d, t))
    )
    jpgs = list((tmp_path / "out").glob("*/*.jpg"))
    assert summary.images == len(jpgs) == calls[-1][0] == calls[-1][1]
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert (summary.targets, summary.distractors, summary.cities) == (16, 4, 2)
    manifest = read_manifest(tmp_path / "out")
    assert manifest is not None and manifest["images"] == summary.images
    assert manifest["config"]["seed"] == SynthConfig.tiny().seed
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0001", "0002", MANIFEST_NAME]
    d_lines = [p.read_text().split("\n")[0] for p in (tmp_path / "out").glob("*/*.txt")]
    assert all(len(line.split()) == 18 for line in d_lines)  # default: long form only


def test_same_seed_gives_identical_bytes_whatever_the_workers(tmp_path: Path, city: Path) -> None:
    generate_city(tmp_path / "again", TINY, workers=2)
    assert _files(tmp_path / "again") == _files(city)


def test_different_seed_gives_different_images(tmp_path: Path, city: Path) -> None:
    generate_city(tmp_path / "other", SynthConfig.tiny(seed=TINY.seed + 1))
    first = _files(city)
    other = _files(tmp_path / "other")
    shared = set(first) & set(other)
    assert not any(first[name] == other[name] for name in shared if name.endswith(".jpg"))
    assert first != other


def test_every_image_has_its_metadata_and_decodes(city: Path) -> None:
    jpgs = {p.with_suffix("") for p in city.glob("*/*.jpg")}
    txts = {p.with_suffix("") for p in city.glob("*/*.txt")}
    assert jpgs == txts and len(jpgs) > 40
    for stem in sorted(jpgs)[:10]:
        with Image.open(stem.with_suffix(".jpg")) as image:
            assert image.size == (TINY.image_size, TINY.image_size)
            assert image.format == "JPEG"


def test_long_lines_have_17_numbers_matching_the_file_name(texts: dict[Path, str]) -> None:
    long_files = 0
    for path, text in texts.items():
        lines = text.splitlines()
        d = lines[0].split()
        dataset, target, patch, _view = path.stem.split("_")
        assert d[0] == "d" and d[1:4] == [dataset, target, patch]
        assert path.parent.name == dataset and len(dataset) == 4 and len(target) == 7
        if len(d) == 18:
            long_files += 1
            values = [float(v) for v in d[1:]]
            assert values[-1] == 0.0  # roll
            assert len(d[5].split(".")[1]) >= 6 and len(d[6].split(".")[1]) >= 6
            assert math.isclose(math.hypot(*values[7:10]), 1.0, abs_tol=1e-5)
            assert all(line.startswith("a ") and len(line.split()) == 41 for line in lines[1:])
        else:
            assert len(d) == 4 and len(lines) == 2 and lines[1].split()[0] == "c"
            assert len(lines[1].split()) == 3
        parsed = parse_metadata(text)
        assert (parsed.dataset_id, parsed.target_id, parsed.patch_id) == (
            int(dataset),
            int(target),
            int(patch),
        )
    assert long_files > 0


def test_file_form_fractions_are_respected(texts: dict[Path, str]) -> None:
    forms = Counter(
        ("short" if len(t.split("\n")[0].split()) == 4 else "long", "\na " in t)
        for t in texts.values()
    )
    total = sum(forms.values())
    short = forms[("short", False)]
    long_with_a = forms[("long", True)]
    long_total = total - short
    assert abs(short - TINY.short_form_fraction * total) <= TINY.cities
    assert abs(long_with_a - TINY.alignment_line_fraction * long_total) <= TINY.cities


def test_positions_lie_in_their_city_and_cameras_face_targets(texts: dict[Path, str]) -> None:
    for text in texts.values():
        meta = parse_metadata(text)
        centre = CITIES[meta.dataset_id]
        offset = float(great_circle_m(centre.lat, centre.lon, meta.lat, meta.lon))
        assert offset <= centre.radius_m + 10.0
        if meta.form == "long":
            assert meta.sv_lat is not None and meta.sv_lon is not None and meta.heading is not None
            standoff = float(great_circle_m(meta.sv_lat, meta.sv_lon, meta.lat, meta.lon))
            assert 5.0 <= standoff <= 40.0
            assert 5.0 <= float(meta.distance or 0) <= 45.0
            towards = _bearing_deg(meta.sv_lat, meta.sv_lon, meta.lat, meta.lon)
            assert abs((meta.heading - towards + 180.0) % 360.0 - 180.0) < 30.0


def test_views_per_target_and_single_view_distractors(texts: dict[Path, str]) -> None:
    views = Counter(tuple(p.stem.split("_")[:2]) for p in texts)
    counts = Counter(views.values())
    assert counts[1] == TINY.distractors_per_city * TINY.cities
    multi = [n for n in views.values() if n > 1]
    assert len(multi) == TINY.targets_per_city * TINY.cities
    assert all(TINY.min_views <= n <= TINY.max_views for n in multi)
    assert len(set(multi)) > 1


def test_targets_stand_in_street_rows(texts: dict[Path, str]) -> None:
    metas = [parse_metadata(t) for t in texts.values()]
    for dataset_id in CITIES:
        points: dict[int, tuple[float, float]] = {}
        for meta in metas:
            if meta.dataset_id == dataset_id and meta.form == "long":
                points.setdefault(meta.target_id, (meta.lat, meta.lon))
        if len(points) < 2:
            continue
        lat, lon = np.array(list(points.values())).T
        gaps = great_circle_m(lat[:, None], lon[:, None], lat[None], lon[None])
        np.fill_diagonal(gaps, np.inf)
        nearest = gaps.min(axis=1)
        assert nearest.min() >= 8.0
        assert 12.0 <= float(np.median(nearest)) <= 80.0


def test_regenerating_into_its_own_output_overwrites_cleanly(tmp_path: Path) -> None:
    out = tmp_path / "city"
    generate_city(out, SMALL)
    before = _files(out)
    smaller = replace(SMALL, cities=1)
    summary = generate_city(out, smaller)
    after = _files(out)
    assert len([n for n in after if n.endswith(".jpg")]) == summary.images
    assert not any(name.startswith("0002") for name in after)
    assert {n: b for n, b in before.items() if n.startswith("0001")} == {
        n: b for n, b in after.items() if n.startswith("0001")
    }


def test_an_interrupted_generation_has_no_manifest_and_can_be_redone(tmp_path: Path) -> None:
    out = tmp_path / "city"

    def interrupt(done: int, total: int) -> None:
        if done > 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_city(out, SMALL, progress=interrupt)
    assert read_manifest(out) is None and (out / INCOMPLETE_NAME).is_file()
    assert any(out.glob("*/*.jpg"))
    generate_city(out, SMALL)
    assert read_manifest(out) is not None and not (out / INCOMPLETE_NAME).exists()


def test_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not ours")
    with pytest.raises(FileExistsError, match=r"holiday\.jpg"):
        generate_city(out, SMALL)
    assert (out / "holiday.jpg").read_bytes() == b"not ours"
    assert list(out.iterdir()) == [out / "holiday.jpg"]


def test_refuses_dataset_like_files_without_a_synth_marker(tmp_path: Path) -> None:
    real = tmp_path / "streetview" / "0001" / "0001_0000001_0000001_0.jpg"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"a real photo")
    with pytest.raises(FileExistsError, match=MANIFEST_NAME):
        generate_city(tmp_path / "streetview", SMALL)
    assert real.read_bytes() == b"a real photo"


def test_refuses_a_foreign_file_inside_a_dataset_folder(tmp_path: Path) -> None:
    out = tmp_path / "city"
    generate_city(out, SMALL)
    (out / "0001" / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.md"):
        generate_city(out, SMALL)
    assert (out / MANIFEST_NAME).is_file()


def test_refuses_a_file_in_place_of_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "city"
    target.write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        generate_city(target, SMALL)


def test_rejects_bad_worker_counts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        generate_city(tmp_path / "city", SMALL, workers=0)
