"""The SLURM side of compute.mode slurm that needs no cluster: the batch script, SLURM's own
descriptions of a job parsed, and the failure a job's end turns into. The jobs themselves run on
a real cluster in tests/e2e/test_slurm_stack.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from geotriplet_assets.config import SlurmResources, parse_config
from geotriplet_assets.defs.slurm import (
    STORAGE_REQUIRED_ENV_VAR,
    JobSpec,
    batch_script,
    failure_description,
    job_environment,
    parse_sacct_job,
    parse_scontrol_job,
    trials_per_worker,
)
from geotriplet_assets.training.optuna_search import redacted_url

# `scontrol show job -o 1` and `sacct -X -n -P -o ...` on the compose cluster, after the job
SCONTROL_LINE = (
    "JobId=1 JobName=geotriplet-backbone_embeddings-0001 UserId=geotriplet(10001) "
    "GroupId=geotriplet(999) MCS_label=N/A Priority=4294901759 Nice=0 Account=(null) QOS=normal "
    "JobState=COMPLETED Reason=None Dependency=(null) Requeue=0 Restarts=0 BatchFlag=1 Reboot=0 "
    "ExitCode=0:0 RunTime=00:00:18 TimeLimit=00:30:00 TimeMin=N/A "
    "SubmitTime=2026-12-05T19:00:25 EligibleTime=2026-12-05T19:00:25 "
    "AccrueTime=2026-12-05T19:00:25 StartTime=2026-12-05T19:00:26 EndTime=2026-12-05T19:00:44 "
    "Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-05T19:00:26 "
    "Scheduler=Main Partition=cpu AllocNode:Sid=slurm-controller:1 ReqNodeList=(null) "
    "ExcNodeList=(null) NodeList=slurm-node-1 BatchHost=slurm-node-1 NumNodes=1 NumCPUs=2 "
    "NumTasks=1 CPUs/Task=2 ReqB:S:C:T=0:0:*:* TRES=cpu=2,node=1,billing=2 Socks/Node=* "
    "MinMemoryNode=3G Features=(null) Command=/data/slurm/run/job.sh WorkDir=/home/geotriplet "
    "StdOut=/data/slurm/run/slurm-1.log Power= \n"
)
SACCT_LINE = (
    "1|COMPLETED|0:0|slurm-node-1|None|2026-12-05T19:00:25|2026-12-05T19:00:26|"
    "2026-12-05T19:00:44\n"
)


def _spec(tmp_path: Path, step: str = "backbone_embeddings", **resources: object) -> JobSpec:
    return JobSpec(
        step=step,
        name="geotriplet-backbone_embeddings-0005",
        arguments=(),
        resources=SlurmResources(**resources),
        folder=tmp_path,
        config_key="hyperparameter_search" if step == "trials" else step,
    )


def test_the_batch_script_asks_for_the_configured_resources_and_runs_the_job_module(
    tmp_path: Path,
) -> None:
    spec = _spec(
        tmp_path,
        partition="gpu",
        time="02:00:00",
        cpus_per_task=8,
        mem="32G",
        gres="gpu:1",
        extra_args=["--constraint=a100"],
    )
    script = batch_script(
        spec, "/opt/venv/bin/python", "rrg-lab", None, {"GEOTRIPLET_CONFIG": "/p/my config.yaml"}
    )
    options = [line.removeprefix("#SBATCH ") for line in script.splitlines() if "#SBATCH" in line]
    assert options == [
        "--job-name=geotriplet-backbone_embeddings-0005",
        f"--chdir={tmp_path}",
        f"--output={tmp_path}/slurm-%j.log",
        "--time=02:00:00",
        "--cpus-per-task=8",
        "--nodes=1",
        "--ntasks=1",
        "--no-requeue",
        "--partition=gpu",
        "--mem=32G",
        "--gres=gpu:1",
        "--account=rrg-lab",
        "--constraint=a100",
    ]
    assert "export GEOTRIPLET_CONFIG='/p/my config.yaml'" in script
    assert script.rstrip().endswith(
        "exec /opt/venv/bin/python -m geotriplet_assets.defs.slurm_job backbone_embeddings"
    )
    path = tmp_path / "job.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0


def test_scontrol_and_sacct_describe_the_same_job_alike() -> None:
    shown = parse_scontrol_job(SCONTROL_LINE)
    accounted = parse_sacct_job(SACCT_LINE)
    assert accounted is not None
    for state in (shown, accounted):
        assert (state.job_id, state.state, state.exit_code) == ("1", "COMPLETED", "0:0")
        assert (state.nodes, state.reason, state.active) == ("slurm-node-1", "", False)
        assert state.seconds(state.submitted, state.started) == 1.0
        assert state.seconds(state.started, state.ended) == 18.0


def test_a_pending_job_has_no_start_yet() -> None:
    line = SCONTROL_LINE.replace(
        "JobState=COMPLETED Reason=None", "JobState=PENDING Reason=Resources"
    )
    line = line.replace("StartTime=2026-12-05T19:00:26", "StartTime=Unknown")
    state = parse_scontrol_job(line)
    assert (state.state, state.reason, state.active, state.started) == (
        "PENDING",
        "Resources",
        True,
        None,
    )
    cancelled = parse_sacct_job(SACCT_LINE.replace("|COMPLETED|", "|CANCELLED by 10001|"))
    assert cancelled is not None and cancelled.state == "CANCELLED"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("NODE_FAIL", "its node failed while it ran"),
        ("TIMEOUT", "past its time limit (compute.slurm.backbone_embeddings.time is 00:10:00)"),
        ("OUT_OF_MEMORY", "(compute.slurm.backbone_embeddings.mem is 2G)"),
    ],
)
def test_a_job_that_did_not_complete_is_described_in_slurms_words_with_its_log(
    tmp_path: Path, state: str, expected: str
) -> None:
    log = tmp_path / "slurm-1.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    ended = parse_scontrol_job(
        SCONTROL_LINE.replace("JobState=COMPLETED", f"JobState={state}").replace(
            "ExitCode=0:0", "ExitCode=0:9"
        )
    )
    text = failure_description(_spec(tmp_path, time="00:10:00", mem="2G"), ended, log)
    assert text.startswith(
        f"SLURM job 1 (geotriplet-backbone_embeddings-0005) ended {state} on slurm-node-1: "
    )
    assert expected in text and "[exit code 0:9]" in text
    assert text.endswith("line 39") and "line 14\n" not in text


def test_trials_are_shared_evenly_among_at_most_the_configured_workers() -> None:
    assert trials_per_worker(5, 2) == [3, 2]
    assert trials_per_worker(2, 4) == [1, 1]
    assert trials_per_worker(8, 3) == [3, 3, 2]


def test_the_study_storage_in_metadata_and_errors_hides_its_password() -> None:
    url = "postgresql+psycopg2://geotriplet:s3cr:et@postgres:5432/optuna"
    assert redacted_url(url) == "postgresql+psycopg2://geotriplet:***@postgres:5432/optuna"
    # an unescaped "@" in the password makes the URL unparsable: still nothing of it shows
    assert redacted_url("postgresql://g:p@ss@h:5432/db") == "postgresql://g:***@h:5432/db"
    assert redacted_url("sqlite:////data/optuna/studies.db") == (
        "sqlite:////data/optuna/studies.db"
    )


def test_a_state_slurm_adds_is_not_taken_for_the_end_of_the_job() -> None:
    for state in ("PENDING", "RUNNING", "STOPPED", "SIGNALING", "STAGE_OUT", "REQUEUE_HOLD"):
        line = SCONTROL_LINE.replace("JobState=COMPLETED", f"JobState={state}")
        assert parse_scontrol_job(line).active, state
    for state in ("COMPLETED", "FAILED", "NODE_FAIL", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED"):
        line = SCONTROL_LINE.replace("JobState=COMPLETED", f"JobState={state}")
        assert not parse_scontrol_job(line).active, state


def test_a_trial_job_past_its_time_names_the_searchs_setting(tmp_path: Path) -> None:
    ended = parse_scontrol_job(SCONTROL_LINE.replace("JobState=COMPLETED", "JobState=TIMEOUT"))
    text = failure_description(_spec(tmp_path, "trials", time="00:20:00"), ended, tmp_path / "x")
    assert "(compute.slurm.hyperparameter_search.time is 00:20:00)" in text
    assert "is empty or missing" in text


def test_the_job_sees_the_steps_config_and_data_root_as_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEOTRIPLET_DATA_ROOT", raising=False)
    monkeypatch.delenv("GEOTRIPLET_CONFIG", raising=False)
    monkeypatch.setenv("GEOTRIPLET_OPTUNA_STORAGE", "postgresql://g:secret@h/db")
    (tmp_path / "my.yaml").write_text("data: {root: relative/data}\n")
    config = parse_config((tmp_path / "my.yaml").read_text())
    environment = job_environment("my.yaml", config)
    assert environment["GEOTRIPLET_CONFIG"] == str(tmp_path / "my.yaml")
    assert environment["GEOTRIPLET_DATA_ROOT"] == str(tmp_path / "relative" / "data")
    assert Path(environment["GEOTRIPLET_CACHE_DIR"]).is_absolute()
    # the storage URL's password stays out of the script; only that it must arrive is written
    assert environment[STORAGE_REQUIRED_ENV_VAR] == "1"
    assert "secret" not in "".join(environment.values())


def test_compute_mode_is_local_unless_the_config_or_the_environment_says_slurm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GEOTRIPLET_COMPUTE_MODE", raising=False)
    assert parse_config("").compute.mode == "local"
    monkeypatch.setenv("GEOTRIPLET_COMPUTE_MODE", "slurm")
    assert parse_config("").compute.mode == "slurm"
    assert parse_config("compute: {mode: local}").compute.mode == "local"
    monkeypatch.setenv("GEOTRIPLET_COMPUTE_MODE", "kubernetes")
    with pytest.raises(ValueError, match=r"GEOTRIPLET_COMPUTE_MODE\) is local or slurm"):
        parse_config("")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("{time: 'two hours'}", "time must be SLURM's"),
        ("{extra_args: ['-p gpu']}", "extra_args holds sbatch long options"),
        ("{cpus_per_task: 0}", "cpus_per_task"),
        ("{gres: 'gpu:1\\nrm -rf /'}", "one word without spaces"),
        ("{partition: 'gpu a100'}", "one word without spaces"),
    ],
)
def test_bad_slurm_resources_are_named(section: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(f"compute: {{slurm: {{backbone_embeddings: {section}}}}}")
    with pytest.raises(ValueError, match=r"compute\.slurm\.account.*one word"):
        parse_config("compute: {slurm: {account: 'lab\\nsleep 1'}}")
