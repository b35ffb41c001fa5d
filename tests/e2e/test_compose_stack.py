"""The compose stack end to end: "Materialize all" through GraphQL on a fresh instance, the
service turning ready on the published bundle and answering POST /similar, its search page in a
browser (thumbnails read from the read-only data mount), and the lineage page.

Runs only under tests/e2e/run_compose_e2e.sh, which builds and starts the stack.
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.dagster_api import AssetNode, BackfillState, DagsterApi, wait_for
from tests.e2e.lineage_page import capture_lineage
from tests.e2e.search_page import search_with_upload
from tests.e2e.stack import Stack

STACK = Stack.from_environment()
pytestmark = pytest.mark.skipif(
    STACK is None, reason="needs the compose stack: run tests/e2e/run_compose_e2e.sh"
)

MATERIALISE_TIMEOUT_S = float(os.environ.get("GEOTRIPLET_E2E_MATERIALISE_TIMEOUT_S", "2400"))

# Run in the pipeline container: the most photographed building's first image, with its ids.
CHOOSE_QUERY_IMAGE = """
import base64, json
import pandas as pd
from geotriplet_assets.paths import ArtefactLayout
from geotriplet_assets.config import load_config
config = load_config()
images = pd.read_parquet(ArtefactLayout(config.data_root).catalog_dir / "images.parquet")
views = images.groupby(["dataset_id", "target_id"])["image_id"].transform("size")
row = images[views == views.max()].sort_values("image_id").iloc[0]
print(json.dumps({
    "image_id": row.image_id,
    "dataset_id": int(row.dataset_id),
    "target_id": int(row.target_id),
    "views": int(views.max()),
    "jpeg": base64.b64encode((config.input_dir / row.path).read_bytes()).decode(),
}))
"""


@dataclass
class Materialisation:
    nodes: list[AssetNode]
    backfill_id: str
    state: BackfillState
    seconds: float
    ready_status_before: int


@pytest.fixture(scope="module")
def stack() -> Stack:
    assert STACK is not None
    return STACK


@pytest.fixture(scope="module")
def api(stack: Stack) -> DagsterApi:
    return DagsterApi(stack.dagster_url)


def _all_partitions_registered(api: DagsterApi) -> list[AssetNode] | None:
    nodes = api.asset_nodes()
    partitioned = [node for node in nodes if node.key == "backbone_embeddings"]
    return nodes if partitioned and partitioned[0].partition_keys else None


@pytest.fixture(scope="module")
def materialised(stack: Stack, api: DagsterApi) -> Materialisation:
    """ "Materialize all" with every partition (through the API) on the fresh stack, to the end."""
    wait_for("the code location to load", lambda: api.code_location_loaded() or None, 600)
    nodes = wait_for(
        "the sensor to register the partitions", lambda: _all_partitions_registered(api), 300
    )
    ready_before = httpx.get(f"{stack.service_url}/ready", timeout=10).status_code
    started = time.monotonic()
    backfill_id = api.launch_materialize_all(nodes)
    state = wait_for(
        f"backfill {backfill_id} to finish",
        lambda: state if (state := api.backfill_state(backfill_id)).finished else None,
        MATERIALISE_TIMEOUT_S,
        every_s=10,
    )
    return Materialisation(nodes, backfill_id, state, time.monotonic() - started, ready_before)


def test_materialize_all_succeeds_on_a_fresh_instance(
    materialised: Materialisation, api: DagsterApi
) -> None:
    failed = {
        run: status for run, status in materialised.state.runs.items() if status != "SUCCESS"
    }
    assert materialised.state.status == "COMPLETED_SUCCESS", f"runs not successful: {failed}"
    assert not failed
    partition_keys = next(n.partition_keys for n in materialised.nodes if n.partition_keys)
    assert len(partition_keys) == 8  # one per DatasetID of the demo city
    latest = api.materialisations()
    assert set(latest) == {node.key for node in materialised.nodes}
    for key, node in latest.items():
        if node["isPartitioned"]:
            stats = node["partitionStats"]
            assert stats["numMaterialized"] == stats["numPartitions"] == len(partition_keys), key
        else:
            assert node["assetMaterializations"], f"{key} was never materialised"
    print(
        f"\nmaterialised {len(latest)} assets in {materialised.seconds:.0f} s, "
        f"{len(materialised.state.runs)} runs"
    )


def _wait_until_ready(stack: Stack) -> None:
    def ready() -> dict | None:
        response = httpx.get(f"{stack.service_url}/ready", timeout=10)
        return response.json() if response.status_code == 200 else None

    wait_for("the service to load the published bundle", ready, 180, every_s=2)


@pytest.fixture(scope="module")
def query(materialised: Materialisation, stack: Stack) -> dict:
    """The most photographed building's first image: ids, view count and JPEG (base64)."""
    return json.loads(stack.run_in("pipeline", "python", "-c", CHOOSE_QUERY_IMAGE))


def test_service_turns_ready_by_itself_and_finds_the_query_building(
    materialised: Materialisation, stack: Stack, query: dict
) -> None:
    assert materialised.ready_status_before == 503  # no bundle before the materialisation
    _wait_until_ready(stack)
    up_to_ready = time.time() - stack.up_started_at
    (stack.artifacts / "timings.txt").write_text(
        f"up to a ready service {up_to_ready:.0f} s (materialisation {materialised.seconds:.0f} s)"
    )

    response = httpx.post(
        f"{stack.service_url}/similar",
        files={"image": ("query.jpg", base64.b64decode(query["jpeg"]), "image/jpeg")},
        data={"k": "5"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    (stack.artifacts / "similar.json").write_text(
        json.dumps(
            {"query": {k: v for k, v in query.items() if k != "jpeg"}, "answer": answer}, indent=2
        )
    )
    building = (query["dataset_id"], query["target_id"])
    hits = answer["neighbours"]
    assert len(hits) == 5
    assert (hits[0]["dataset_id"], hits[0]["target_id"]) == building
    other_views = [
        hit
        for hit in hits
        if (hit["dataset_id"], hit["target_id"]) == building
        and hit["image_id"] != query["image_id"]
    ]
    assert other_views, f"no other view of building {building} among {hits}"


def test_search_page_on_the_stack_finds_the_uploaded_building(
    materialised: Materialisation, stack: Stack, query: dict
) -> None:
    _wait_until_ready(stack)
    photo = stack.artifacts / "query.jpg"
    photo.write_bytes(base64.b64decode(query["jpeg"]))
    screenshot = stack.artifacts / "search-page.png"
    shown = search_with_upload(stack.service_url, photo, screenshot)
    assert screenshot.stat().st_size > 10_000
    assert shown.results, "the page showed no result"
    assert shown.results[0]["building"] == f"{query['dataset_id']}/{query['target_id']}"
    # every result's thumbnail came from the originals on the service's read-only mount
    assert shown.thumbnails == len(shown.results)
    located = httpx.post(
        f"{stack.service_url}/locate",
        files={"image": ("query.jpg", photo.read_bytes(), "image/jpeg")},
        timeout=60,
    ).json()
    assert (shown.lat, shown.lon) == pytest.approx((located["lat"], located["lon"]))
    assert f"{located['lat']:.6f}, {located['lon']:.6f}" in shown.location_text


def test_lineage_page_shows_every_asset_materialised(
    materialised: Materialisation, stack: Stack
) -> None:
    names = [node.key for node in materialised.nodes]
    partitioned = {node.key for node in materialised.nodes if node.partition_keys}
    screenshot = stack.artifacts / "dagster-asset-lineage.png"
    node_texts = capture_lineage(stack.dagster_url, names, screenshot)
    assert screenshot.stat().st_size > 10_000
    for name, text in node_texts.items():
        assert "Never materialized" not in text, f"{name}: {text!r}"
        # a partitioned asset's node counts its partitions; the others show the latest event
        expected = "100% filled" if name in partitioned else "Materialized"
        assert expected in text, f"{name}: {text!r}"
