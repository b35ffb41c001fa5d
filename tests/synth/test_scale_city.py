from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import cKDTree

from geotriplet_assets.catalogue.image_catalog import build_catalog
from geotriplet_assets.cli.main import main
from geotriplet_assets.geodesy import unit_vectors
from geotriplet_assets.geography.targets import build_targets
from geotriplet_assets.synth.output_dir import read_manifest
from geotriplet_assets.synth.scale_city import SCALE_IMAGE_SIZE, generate_scale_city


def test_a_scale_city_is_real_format_data_of_the_size_asked_for(tmp_path: Path) -> None:
    summary = generate_scale_city(tmp_path / "city", 3_000, regions=3, seed=5)
    catalog = build_catalog(tmp_path / "city")

    assert catalog.rejections.empty
    assert summary.images == len(catalog.images) >= 3_000
    assert len(catalog.images) < 3_000 + 3 * 7  # each region rounded up to whole buildings
    assert set(catalog.images["form"]) == {"long"}
    assert sorted(catalog.images["dataset_id"].unique()) == [1, 2, 3]
    views = catalog.images.groupby(["dataset_id", "target_id"]).size()
    assert views.min() == 1 and views.max() <= 7 and 0.05 < (views == 1).mean() < 0.15
    assert summary.targets + summary.distractors == len(views)
    # Buildings stand along streets: the nearest other building is a facade away.
    targets = build_targets(catalog.images)
    vectors = unit_vectors(targets["lat"], targets["lon"])
    nearest_m = cKDTree(vectors).query(vectors, k=2)[0][:, 1] * 6_371_000
    assert 5 < np.median(nearest_m) < 25
    first = tmp_path / "city" / catalog.images["path"].iloc[0]
    assert Image.open(first).size == (SCALE_IMAGE_SIZE, SCALE_IMAGE_SIZE)
    assert read_manifest(tmp_path / "city")["config"]["preset"] == "scale"


def test_the_files_do_not_depend_on_the_workers(tmp_path: Path) -> None:
    generate_scale_city(tmp_path / "one", 400, regions=2, workers=1)
    generate_scale_city(tmp_path / "two", 400, regions=2, workers=2)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.*"))
    assert len(files) > 800
    for relative in files:
        if relative.name != "synth_manifest.json":
            assert (tmp_path / "one" / relative).read_bytes() == (
                tmp_path / "two" / relative
            ).read_bytes()


def test_bad_sizes_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="images must be"):
        generate_scale_city(tmp_path / "city", 0)
    assert main(["synth", "--preset", "scale", "--out", str(tmp_path / "c")]) == 2
    assert "--images" in capsys.readouterr().err
    assert main(["synth", "--preset", "scale", "--images", "0", "--out", str(tmp_path / "c")]) == 2
    assert "--images must be between 1 and 50,000,000, got 0" in capsys.readouterr().err
    out = tmp_path / "c"
    assert main(["synth", "--preset", "scale", "--images", "50", "--out", str(out)]) == 0
    assert len(build_catalog(out).images) >= 50
