"""The compose stack end to end: "Materialize all" through GraphQL on a fresh instance, the
service turning ready on the published bundle and answering POST /similar, its search page in a
browser (thumbnails read from the read-only data mount), and the lineage page.

Runs only under tests/e2e/run_compose_e2e.sh, which builds and starts the stack.
"""

from __future__ import annotations

import base64
import time

import httpx
import pytest

from tests.e2e.dagster_api import DagsterApi
from tests.e2e.lineage_page import capture_lineage
from tests.e2e.search_page import search_with_upload
from tests.e2e.stack import Stack
from tests.e2e.whole_graph import (
    Materialisation,
    choose_query,
    similar_to,
    wait_until_ready,
)

STACK = Stack.from_environment()
pytestmark = pytest.mark.skipif(
    STACK is None, reason="needs the compose stack: run tests/e2e/run_compose_e2e.sh"
)


def test_materialize_all_succeeds_on_a_fresh_instance(
    materialised: Materialisation, api: DagsterApi
) -> None:
    failed = {
        run: status for run, status in materialised.state.runs.items() if status != "SUCCESS"
    }
    assert materialised.state.status == "COMPLETED_SUCCESS", f"runs not successful: {failed}"
    assert not failed
    partition_keys = materialised.partition_keys
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


@pytest.fixture(scope="module")
def query(materialised: Materialisation, stack: Stack) -> dict:
    return choose_query(stack)


def test_service_turns_ready_by_itself_and_finds_the_query_building(
    materialised: Materialisation, stack: Stack, query: dict
) -> None:
    assert materialised.ready_status_before == 503  # no bundle before the materialisation
    wait_until_ready(stack)
    up_to_ready = time.time() - stack.up_started_at
    (stack.artifacts / "timings.txt").write_text(
        f"up to a ready service {up_to_ready:.0f} s (materialisation {materialised.seconds:.0f} s)"
    )

    similar_to(stack, query)


def test_search_page_on_the_stack_finds_the_uploaded_building(
    materialised: Materialisation, stack: Stack, query: dict
) -> None:
    wait_until_ready(stack)
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
