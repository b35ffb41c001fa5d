"""What both stacks' end-to-end tests do: "Materialize all" through the API to its end, and
POST /similar on the service with the demo city's most photographed building."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass

import httpx

from tests.e2e.dagster_api import AssetNode, BackfillState, DagsterApi, wait_for
from tests.e2e.stack import Stack

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

    @property
    def partition_keys(self) -> tuple[str, ...]:
        return next(node.partition_keys for node in self.nodes if node.partition_keys)


def _all_partitions_registered(api: DagsterApi) -> list[AssetNode] | None:
    nodes = api.asset_nodes()
    partitioned = [node for node in nodes if node.key == "backbone_embeddings"]
    return nodes if partitioned and partitioned[0].partition_keys else None


def materialise_all(stack: Stack, api: DagsterApi) -> Materialisation:
    """ "Materialize all" with every partition (through the API) on the fresh stack, to the end."""
    wait_for("the code location to load", lambda: api.code_location_loaded() or None, 600)
    nodes = wait_for(
        "the sensor to register the partitions", lambda: _all_partitions_registered(api), 300
    )
    ready_before = httpx.get(f"{stack.service_url}/ready", timeout=10).status_code
    started = time.monotonic()
    backfill_id = api.launch_materialize_all(nodes)
    state = api.wait_for_backfill(backfill_id, MATERIALISE_TIMEOUT_S)
    return Materialisation(nodes, backfill_id, state, time.monotonic() - started, ready_before)


def wait_until_ready(stack: Stack) -> None:
    def ready() -> dict | None:
        response = httpx.get(f"{stack.service_url}/ready", timeout=10)
        return response.json() if response.status_code == 200 else None

    wait_for("the service to load the published bundle", ready, 180, every_s=2)


def choose_query(stack: Stack) -> dict:
    """The most photographed building's first image: ids, view count and JPEG (base64)."""
    return json.loads(stack.run_in("pipeline", "python", "-c", CHOOSE_QUERY_IMAGE))


def similar_to(stack: Stack, query: dict, k: int = 5) -> dict:
    """POST /similar with the query's photo; asserts the building and another view of it are
    found, and returns the answer."""
    response = httpx.post(
        f"{stack.service_url}/similar",
        files={"image": ("query.jpg", base64.b64decode(query["jpeg"]), "image/jpeg")},
        data={"k": str(k)},
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
    assert len(hits) == k
    assert (hits[0]["dataset_id"], hits[0]["target_id"]) == building
    other_views = [
        hit
        for hit in hits
        if (hit["dataset_id"], hit["target_id"]) == building
        and hit["image_id"] != query["image_id"]
    ]
    assert other_views, f"no other view of building {building} among {hits}"
    return answer
