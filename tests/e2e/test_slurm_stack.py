"""The compose stack with its SLURM cluster (the `slurm` profile) end to end: "Materialize all"
through GraphQL with compute.mode slurm, SLURM's accounting of the jobs it ran (embeddings on
both compute nodes, the Optuna trials in parallel, the head), the service finding the demo
photo's building, a run terminated in Dagster cancelling its job, and a compute node killed
during an embedding partition: the partition fails with SLURM's reason and its retry succeeds on
the other node.

Runs only under `tests/e2e/run_compose_e2e.sh --slurm`, which builds and starts the stack.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime

import pytest

from tests.e2e.dagster_api import DagsterApi, wait_for
from tests.e2e.stack import Stack
from tests.e2e.whole_graph import (
    MATERIALISE_TIMEOUT_S,
    Materialisation,
    choose_query,
    similar_to,
    wait_until_ready,
)

STACK = Stack.from_environment()
pytestmark = pytest.mark.skipif(
    STACK is None or os.environ.get("GEOTRIPLET_E2E_PROFILE") != "slurm",
    reason="needs the SLURM stack: run tests/e2e/run_compose_e2e.sh --slurm",
)

NODES = ("slurm-node-1", "slurm-node-2")
EMBEDDING_JOB = "geotriplet-backbone_embeddings-"
SACCT_FIELDS = "JobID,JobName,State,NodeList,Submit,Start,End"

# Run in the pipeline container: the shard a partition's embeddings are written to.
SHARD_PATH = """
import sys
from geotriplet_assets.config import load_config
from geotriplet_assets.paths import ArtefactLayout
config = load_config()
print(ArtefactLayout(config.data_root).embedding_shard(config.model.backbone, int(sys.argv[1])))
"""


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    state: str
    node: str
    submitted: datetime
    started: datetime | None
    ended: datetime | None

    @property
    def queued_s(self) -> float:
        assert self.started is not None
        return (self.started - self.submitted).total_seconds()


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def sacct(stack: Stack) -> list[Job]:
    """Every job the cluster's accounting holds, oldest first."""
    text = stack.run_in(
        "slurm-controller",
        *("sacct", "-a", "-X", "-n", "-P", "-S", "2000-01-01", "-o", SACCT_FIELDS),
    ).decode()
    jobs = []
    for line in text.splitlines():
        job_id, name, state, node, submitted, started, ended = line.split("|")
        jobs.append(
            Job(
                job_id,
                name,
                state.split()[0],
                node,
                _time(submitted),
                _time(started),
                _time(ended),
            )
        )
    return jobs


@pytest.fixture(scope="module")
def jobs(materialised: Materialisation, stack: Stack) -> list[Job]:
    # slurmdbd records a job's end shortly after slurmctld

    def ended() -> list[Job] | None:
        found = sacct(stack)
        return found if all(job.ended for job in found) else None

    return wait_for("sacct to record every job's end", ended, 60, every_s=2)


def test_the_whole_graph_materialises_with_its_steps_as_slurm_jobs(
    materialised: Materialisation, stack: Stack
) -> None:
    failed = {
        run: status for run, status in materialised.state.runs.items() if status != "SUCCESS"
    }
    assert materialised.state.status == "COMPLETED_SUCCESS", f"runs not successful: {failed}"
    (stack.artifacts / "timings.txt").write_text(
        f"materialisation through SLURM {materialised.seconds:.0f} s"
    )
    print(f"\nmaterialised the demo graph through SLURM in {materialised.seconds:.0f} s")


def test_each_partition_embedded_in_its_own_job_on_both_nodes(
    materialised: Materialisation, jobs: list[Job], stack: Stack
) -> None:
    embedding = [job for job in jobs if job.name.startswith(EMBEDDING_JOB)]
    assert sorted(job.name.removeprefix(EMBEDDING_JOB) for job in embedding) == sorted(
        materialised.partition_keys
    )
    assert {job.state for job in embedding} == {"COMPLETED"}
    assert {job.node for job in embedding} == set(NODES)
    queued = sorted(job.queued_s for job in jobs if job.started)
    (stack.artifacts / "sacct.txt").write_text(
        "\n".join(f"{job}" for job in jobs)
        + f"\nsubmission to start, s: min {queued[0]:.0f}, median {queued[len(queued) // 2]:.0f}"
    )


def test_the_optuna_trials_ran_as_parallel_jobs(jobs: list[Job]) -> None:
    trials = [job for job in jobs if job.name.startswith("geotriplet-trials-")]
    assert len(trials) == 2
    assert {job.state for job in trials} == {"COMPLETED"}
    first, second = trials
    assert first.started < second.ended and second.started < first.ended, "not in parallel"
    heads = [job for job in jobs if job.name == "geotriplet-projection_head"]
    assert [job.state for job in heads] == ["COMPLETED"]


def test_the_service_finds_the_demo_photos_building(
    materialised: Materialisation, stack: Stack
) -> None:
    wait_until_ready(stack)
    similar_to(stack, choose_query(stack))


def _running_on(stack: Stack, name: str) -> str | None:
    text = stack.run_in("slurm-controller", "squeue", "-h", "-n", name, "-o", "%T|%N").decode()
    state, _, node = text.strip().partition("|")
    return node if state == "RUNNING" and node else None


def _embed_again(stack: Stack, partition: str) -> None:
    """Remove the partition's shard, so that its next materialisation embeds again."""
    shard = stack.run_in("pipeline", "python", "-c", SHARD_PATH, partition).decode().strip()
    stack.run_in("pipeline", "rm", "-f", shard)


def test_terminating_the_run_cancels_its_slurm_job(
    materialised: Materialisation, jobs: list[Job], stack: Stack, api: DagsterApi
) -> None:
    partition = materialised.partition_keys[-1]
    _embed_again(stack, partition)
    name = f"{EMBEDDING_JOB}{partition}"
    backfill = api.launch_backfill(["backbone_embeddings"], [partition])
    wait_for(f"{name} to run", lambda: _running_on(stack, name), 300, every_s=1)
    (run_id,) = api.backfill_state(backfill).runs
    api.terminate_run(run_id)
    ended = api.wait_for_backfill(backfill, 300)
    assert set(ended.runs.values()) == {"CANCELED"}

    def cancelled() -> Job | None:
        last = [job for job in sacct(stack) if job.name == name][-1]
        return last if last.state == "CANCELLED" else None

    wait_for(f"sacct to record {name} cancelled", cancelled, 60, every_s=2)
    # the shard comes back for the test below
    retried = api.wait_for_backfill(
        api.launch_backfill(["backbone_embeddings"], [partition]), MATERIALISE_TIMEOUT_S
    )
    assert set(retried.runs.values()) == {"SUCCESS"}


def test_a_node_killed_during_a_partition_fails_it_and_the_retry_runs_on_the_other(
    materialised: Materialisation, jobs: list[Job], stack: Stack, api: DagsterApi
) -> None:
    partition = materialised.partition_keys[0]
    _embed_again(stack, partition)
    name = f"{EMBEDDING_JOB}{partition}"
    backfill = api.launch_backfill(["backbone_embeddings"], [partition])
    node = wait_for(f"{name} to run", lambda: _running_on(stack, name), 300, every_s=1)
    time.sleep(3)  # into the embedding
    subprocess.run([*stack.compose, "kill", node], check=True, capture_output=True, timeout=60)
    try:
        failed = api.wait_for_backfill(backfill, MATERIALISE_TIMEOUT_S)
        assert set(failed.runs.values()) == {"FAILURE"}
        (run_id,) = failed.runs
        messages = "\n".join(api.step_failures(run_id))
        assert "NODE_FAIL" in messages and node in messages, messages
        (stack.artifacts / "node-failure.txt").write_text(messages)

        retried = api.wait_for_backfill(
            api.launch_backfill(["backbone_embeddings"], [partition]), MATERIALISE_TIMEOUT_S
        )
        assert set(retried.runs.values()) == {"SUCCESS"}
        attempts = [job for job in sacct(stack) if job.name == name]
        assert [job.state for job in attempts[-2:]] == ["NODE_FAIL", "COMPLETED"]
        assert attempts[-2].node == node and attempts[-1].node != node
    finally:
        subprocess.run([*stack.compose, "start", node], capture_output=True, timeout=120)
