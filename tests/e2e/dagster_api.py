"""The Dagster GraphQL calls the end-to-end test makes, the same ones the UI makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

FINISHED_BACKFILL_STATUSES = {
    "COMPLETED",
    "COMPLETED_SUCCESS",
    "COMPLETED_FAILED",
    "FAILED",
    "CANCELED",
}

ASSET_NODES_QUERY = """
query AssetNodes {
  assetNodes {
    assetKey { path }
    isExecutable
    isPartitioned
    partitionKeys
  }
}
"""

LOCATION_QUERY = """
query Workspace {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        locationOrLoadError { __typename ... on PythonError { message } }
      }
    }
  }
}
"""

# LAUNCH_PARTITION_BACKFILL_MUTATION of the UI (LaunchAssetChoosePartitionsDialog)
LAUNCH_BACKFILL_MUTATION = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) {
  partitionBackfillOrError(backfillId: $backfillId) {
    __typename
    ... on PartitionBackfill { status numPartitions }
    ... on PythonError { message }
  }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $backfillId}]}) {
    ... on Runs { results { runId status tags { key value } } }
  }
}
"""

MATERIALISATIONS_QUERY = """
query Materialisations {
  assetNodes {
    assetKey { path }
    isPartitioned
    partitionStats { numMaterialized numPartitions numFailed }
    assetMaterializations(limit: 1) { runId timestamp }
  }
}
"""


RUN_FAILURES_QUERY = """
query RunFailures($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection {
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { message } }
      }
    }
  }
}
"""


TERMINATE_RUN_MUTATION = """
mutation Terminate($runId: String!) {
  terminateRun(runId: $runId) {
    __typename
    ... on PythonError { message }
    ... on TerminateRunFailure { message }
  }
}
"""


class GraphQLError(RuntimeError):
    """The API answered with errors."""


@dataclass(frozen=True)
class AssetNode:
    key: str
    executable: bool
    partition_keys: tuple[str, ...]


@dataclass(frozen=True)
class BackfillState:
    status: str
    runs: dict[str, str]  # run id -> status

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_BACKFILL_STATUSES and not any(
            status in {"QUEUED", "NOT_STARTED", "STARTING", "STARTED"}
            for status in self.runs.values()
        )


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float, every_s: float = 3) -> T:
    """PROBE's first value that is not None, polled until TIMEOUT_S; the last error is reported."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (httpx.HTTPError, GraphQLError) as error:
            last_error, value = error, None
        if value is not None:
            return value
        time.sleep(every_s)
    raise TimeoutError(f"{what}: not within {timeout_s:.0f} s (last error: {last_error})")


class DagsterApi:
    def __init__(self, webserver_url: str) -> None:
        self.url = webserver_url.rstrip("/") + "/graphql"

    def query(self, document: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            self.url, json={"query": document, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        return body["data"]

    def code_location_loaded(self) -> bool:
        workspace = self.query(LOCATION_QUERY)["workspaceOrError"]
        entries = workspace.get("locationEntries") or []
        return bool(entries) and all(
            (entry["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"
            for entry in entries
        )

    def asset_nodes(self) -> list[AssetNode]:
        return [
            AssetNode(
                key="/".join(node["assetKey"]["path"]),
                executable=node["isExecutable"],
                partition_keys=tuple(node["partitionKeys"]) if node["isPartitioned"] else (),
            )
            for node in self.query(ASSET_NODES_QUERY)["assetNodes"]
        ]

    def launch_materialize_all(self, nodes: list[AssetNode]) -> str:
        """What "Materialize all…", "All", "Launch backfill" sends: every asset, every partition.

        All assets share the implicit asset job, so the dialog's target is that (hidden) job and
        it sends the partition keys selected, here all of them.
        """
        partitions = sorted({key for node in nodes for key in node.partition_keys})
        return self.launch_backfill([node.key for node in nodes if node.executable], partitions)

    def launch_backfill(self, asset_keys: list[str], partitions: list[str]) -> str:
        """A backfill of ASSET_KEYS over PARTITIONS, as the partitions dialog launches one."""
        params = {
            "tags": [],
            "assetSelection": [{"path": key.split("/")} for key in asset_keys],
            "partitionNames": partitions,
            "fromFailure": False,
        }
        result = self.query(LAUNCH_BACKFILL_MUTATION, {"backfillParams": params})
        launched = result["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(f"backfill not launched: {launched}")
        return launched["backfillId"]

    def backfill_state(self, backfill_id: str) -> BackfillState:
        data = self.query(BACKFILL_QUERY, {"backfillId": backfill_id})
        backfill = data["partitionBackfillOrError"]
        if backfill["__typename"] != "PartitionBackfill":
            raise GraphQLError(f"backfill {backfill_id}: {backfill}")
        runs = {run["runId"]: run["status"] for run in data["runsOrError"]["results"]}
        return BackfillState(status=backfill["status"], runs=runs)

    def wait_for_backfill(self, backfill_id: str, timeout_s: float) -> BackfillState:
        return wait_for(
            f"backfill {backfill_id} to finish",
            lambda: state if (state := self.backfill_state(backfill_id)).finished else None,
            timeout_s,
            every_s=5,
        )

    def terminate_run(self, run_id: str) -> None:
        """What the run page's "Terminate" button sends."""
        answer = self.query(TERMINATE_RUN_MUTATION, {"runId": run_id})["terminateRun"]
        if answer["__typename"] != "TerminateRunSuccess":
            raise GraphQLError(f"run {run_id} not terminated: {answer}")

    def step_failures(self, run_id: str) -> list[str]:
        """The error messages of the run's failed steps."""
        logs = self.query(RUN_FAILURES_QUERY, {"runId": run_id})["logsForRun"]
        return [
            f"{event['stepKey']}: {event['error']['message']}"
            for event in logs.get("events") or []
            if event["__typename"] == "ExecutionStepFailureEvent"
        ]

    def materialisations(self) -> dict[str, dict[str, Any]]:
        """Per asset: the latest materialisation (or None) and partition counts."""
        return {
            "/".join(node["assetKey"]["path"]): node
            for node in self.query(MATERIALISATIONS_QUERY)["assetNodes"]
        }
