"""Real photographs: two views of one Leuven building (Debian's opencv-doc) indexed among the
tiny synthetic city must be each other's top hit, through the real service."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.image_table import PATH_COLUMN
from geotriplet_assets.bundle.load import load_bundle
from geotriplet_assets.config import IndexConfig
from geotriplet_assets.serving.bundle_publish import publish_bundle
from service.app import create_app
from service.settings import ServiceSettings

pytestmark = pytest.mark.slow

OPENCV_EXAMPLES = Path("/usr/share/doc/opencv-doc/examples/data")
LEUVEN = {
    "leuven/leuvenA": OPENCV_EXAMPLES / "leuvenA.jpg",
    "leuven/leuvenB": OPENCV_EXAMPLES / "leuvenB.jpg",
}
# CI installs opencv-doc and sets this, so a missing photo fails there instead of skipping
REQUIRED_ENV = "GEOTRIPLET_REQUIRE_REAL_PHOTOS"


@pytest.fixture(scope="module")
def bundles_with_leuven(tiny_city_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [str(p) for p in LEUVEN.values() if not p.is_file()]
    if missing:
        if os.environ.get(REQUIRED_ENV):
            pytest.fail(f"{', '.join(missing)} missing: install Debian's opencv-doc")
        pytest.skip("Debian's opencv-doc is not installed (leuvenA.jpg, leuvenB.jpg)")
    source = tiny_city_bundle / (fmt.read_current_version(tiny_city_bundle) or "")
    bundle = load_bundle(source)
    photos = np.stack([bundle.decode(path.read_bytes()) for path in LEUVEN.values()])
    vectors = np.concatenate([np.load(source / fmt.VECTORS), bundle.embed(photos)])
    # The Leuven photos lie outside the city's images_root, so this bundle serves no thumbnails.
    city = pd.read_parquet(source / fmt.IMAGES).drop(columns=PATH_COLUMN, errors="ignore")
    leuven = pd.DataFrame(
        {
            "image_id": list(LEUVEN),
            "dataset_id": 9999,
            "target_id": 1,
            "patch_id": [1, 2],
            "lat": 50.8789,
            "lon": 4.7010,
            "split": "test",
        }
    )
    bundles = tmp_path_factory.mktemp("leuven") / "bundles"
    publish_bundle(
        bundles,
        model_path=source / fmt.MODEL,
        preprocessing=bundle.preprocessing,
        decode_limits=bundle.decode_limits,
        vectors=vectors,
        images=pd.concat([city, leuven], ignore_index=True),
        index_settings=IndexConfig(),
        model_info=dict(bundle.manifest.raw["model"]),
        inputs={"tiny_city_bundle": bundle.version},
    )
    return bundles


@pytest.fixture(scope="module")
def client(bundles_with_leuven: Path):
    app = create_app(ServiceSettings(bundles_dir=bundles_with_leuven, poll_interval_s=0.2))
    with TestClient(app) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, client.get("/ready").text
            time.sleep(0.1)
        yield client


@pytest.mark.parametrize(
    ("query", "expected"),
    [("leuven/leuvenA", "leuven/leuvenB"), ("leuven/leuvenB", "leuven/leuvenA")],
)
def test_the_two_leuven_views_are_each_others_top_hit(
    client: TestClient, query: str, expected: str
) -> None:
    response = client.post("/similar", json={"image_id": query, "k": 3})
    assert response.status_code == 200, response.text
    assert response.json()["neighbours"][0]["image_id"] == expected


def test_an_uploaded_leuven_photo_finds_itself_then_the_other_view(client: TestClient) -> None:
    data = LEUVEN["leuven/leuvenA"].read_bytes()
    response = client.post(
        "/similar", files={"image": ("leuvenA.jpg", data, "image/jpeg")}, data={"k": "2"}
    )
    assert response.status_code == 200, response.text
    hits = [hit["image_id"] for hit in response.json()["neighbours"]]
    assert hits == ["leuven/leuvenA", "leuven/leuvenB"]
