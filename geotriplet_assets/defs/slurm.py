"""Steps as SLURM jobs, driven by Dagster through Pipes (compute.mode: slurm).

A step's work is submitted with `sbatch` as a batch script that runs
`python -m geotriplet_assets.defs.slurm_job` (the same functions a local step calls); Dagster
Pipes carries the run's context to the job and the job's logs and materialisation metadata
back, through files beside the script on the filesystem the cluster shares with Dagster (the
data root). The step polls `scontrol`, cancels its jobs with `scancel` when the run is
cancelled, and fails with SLURM's own account of a job that did not complete (its state, exit
code, node and reason, and the end of its log).

This is a small Pipes client over SLURM's commands rather than the `dagster-slurm` package:
that one submits over SSH from a packaged (pixi) environment it builds itself, which needs a
network this deployment does not have; here Dagster runs where `sbatch` works (a login node,
or the compose stack's code server) and the jobs use the environment that is already there.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg

from geotriplet_assets.config import (
    CACHE_DIR_ENV_VAR,
    CONFIG_ENV_VAR,
    DATA_ROOT_ENV_VAR,
    OPTUNA_STORAGE_ENV_VAR,
    GeoTripletConfig,
    SlurmResources,
)
from geotriplet_assets.defs.metadata import deserialized_metadata

JOB_MODULE = "geotriplet_assets.defs.slurm_job"
COMMAND_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 25
# a job in any other state (PENDING, RUNNING, COMPLETING, SUSPENDED, STOPPED, ...) is not over
FINAL_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "SPECIAL_EXIT",
    }
)
POLL_RETRIES = 5
WHY = {
    "NODE_FAIL": "its node failed while it ran (lost, or its slurmd stopped answering)",
    "TIMEOUT": "it ran past its time limit",
    "OUT_OF_MEMORY": "it was killed for using more memory than it asked for",
    "CANCELLED": "it was cancelled (scancel, or an administrator)",
    "FAILED": "the step's code failed",
    "BOOT_FAIL": "its node failed to boot",
    "DEADLINE": "it missed its deadline",
    "PREEMPTED": "it was preempted",
}
SETTING_BEHIND = {"TIMEOUT": "time", "OUT_OF_MEMORY": "mem"}
# $GEOTRIPLET_OPTUNA_STORAGE may carry a password: it travels in sbatch's exported environment
# only, never into a script on the shared filesystem; the script says that it must arrive.
STORAGE_REQUIRED_ENV_VAR = "GEOTRIPLET_OPTUNA_STORAGE_REQUIRED"


class SlurmError(RuntimeError):
    """A SLURM command that failed, or a job that did not complete."""


@dataclass(frozen=True)
class JobSpec:
    """One job of a step: the arguments of slurm_job, what it asks for, where its files go."""

    step: str
    name: str
    arguments: tuple[str, ...]
    resources: SlurmResources
    folder: Path
    # the compute.slurm section its resources come from
    config_key: str


@dataclass
class JobState:
    """A job as `scontrol show job` (or `sacct`) describes it."""

    job_id: str
    state: str
    exit_code: str = ""
    nodes: str = ""
    reason: str = ""
    submitted: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state not in FINAL_STATES

    def seconds(self, since: datetime | None, until: datetime | None) -> float | None:
        return (until - since).total_seconds() if since and until else None


def _time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None  # "Unknown", "None": not started or not ended


def parse_scontrol_job(text: str) -> JobState:
    """`scontrol show job -o ID`'s one line of Key=Value pairs."""
    fields = dict(pair.split("=", 1) for pair in shlex.split(text.strip()) if "=" in pair)
    return JobState(
        job_id=fields.get("JobId", ""),
        state=fields.get("JobState", "UNKNOWN").split()[0],
        exit_code=fields.get("ExitCode", ""),
        nodes=fields.get("NodeList", "") if fields.get("NodeList") != "(null)" else "",
        reason=fields.get("Reason", "") if fields.get("Reason") != "None" else "",
        submitted=_time(fields.get("SubmitTime", "")),
        started=_time(fields.get("StartTime", "")),
        ended=_time(fields.get("EndTime", "")),
    )


SACCT_FIELDS = ("JobID", "State", "ExitCode", "NodeList", "Reason", "Submit", "Start", "End")


def parse_sacct_job(text: str) -> JobState | None:
    """`sacct -X -n -P -o <SACCT_FIELDS>`'s line for the job (the allocation's line)."""
    for line in text.splitlines():
        values = line.split("|")
        if len(values) != len(SACCT_FIELDS):
            continue
        row = dict(zip(SACCT_FIELDS, values, strict=True))
        return JobState(
            job_id=row["JobID"],
            # "CANCELLED by 10001" -> CANCELLED
            state=row["State"].split()[0] if row["State"] else "UNKNOWN",
            exit_code=row["ExitCode"],
            nodes="" if row["NodeList"] in ("", "None assigned") else row["NodeList"],
            reason="" if row["Reason"] == "None" else row["Reason"],
            submitted=_time(row["Submit"]),
            started=_time(row["Start"]),
            ended=_time(row["End"]),
        )
    return None


def _command(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SlurmError(
            f"compute.mode is slurm but {name} is not on PATH: run Dagster where SLURM's client "
            "commands work (a login node) or set compute.mode: local"
        )
    return found


def _run(*arguments: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [_command(arguments[0]), *arguments[1:]],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise SlurmError(
            f"{arguments[0]} did not answer within {COMMAND_TIMEOUT_S:.0f} s: is slurmctld "
            "reachable from here (scontrol ping)?"
        ) from error


def job_state(job_id: str) -> JobState:
    """The job's state from slurmctld, or from accounting once slurmctld has forgotten it."""
    shown = _run("scontrol", "show", "job", "-o", job_id)
    if shown.returncode == 0 and "JobId=" in shown.stdout:
        return parse_scontrol_job(shown.stdout)
    if shutil.which("sacct"):
        accounted = _run("sacct", "-X", "-n", "-P", "-j", job_id, "-o", ",".join(SACCT_FIELDS))
        state = parse_sacct_job(accounted.stdout) if accounted.returncode == 0 else None
        if state is not None:
            return state
    raise SlurmError(
        f"SLURM knows no job {job_id}: {shown.stderr.strip() or shown.stdout.strip()}"
    )


def batch_script(
    spec: JobSpec,
    slurm_python: str,
    account: str | None,
    qos: str | None,
    environment: Mapping[str, str],
) -> str:
    """The sbatch script of SPEC: its resources as #SBATCH lines, ENVIRONMENT exported, then
    the job module. SLURM does not requeue it: Dagster's retry re-runs a failed step."""
    resources = spec.resources
    options = [
        f"--job-name={spec.name}",
        f"--chdir={spec.folder}",
        f"--output={spec.folder / 'slurm-%j.log'}",
        f"--time={resources.time}",
        f"--cpus-per-task={resources.cpus_per_task}",
        "--nodes=1",
        "--ntasks=1",
        "--no-requeue",
    ]
    optional = {
        "partition": resources.partition,
        "mem": resources.mem,
        "gres": resources.gres,
        "account": account,
        "qos": qos,
    }
    options += [f"--{name}={value}" for name, value in optional.items() if value]
    options += resources.extra_args
    lines = ["#!/bin/bash", *(f"#SBATCH {option}" for option in options), "set -euo pipefail"]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
    command = [slurm_python, "-m", JOB_MODULE, spec.step, *spec.arguments]
    lines.append("exec " + " ".join(shlex.quote(part) for part in command))
    return "\n".join(lines) + "\n"


def submit(script: Path) -> str:
    submitted = _run("sbatch", "--parsable", str(script))
    if submitted.returncode != 0:
        raise SlurmError(f"sbatch refused {script}: {submitted.stderr.strip()}")
    return submitted.stdout.strip().split(";")[0]


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        _run("scancel", *job_ids)


def failure_description(spec: JobSpec, state: JobState, log: Path) -> str:
    """Why the job did not complete, in SLURM's words and the end of its log."""
    why = WHY.get(state.state, "it did not complete")
    setting = SETTING_BEHIND.get(state.state)
    if setting is not None:
        why += (
            f" (compute.slurm.{spec.config_key}.{setting} is {getattr(spec.resources, setting)})"
        )
    where = f" on {state.nodes}" if state.nodes else ""
    details = ", ".join(
        part
        for part in (
            f"exit code {state.exit_code}" if state.exit_code else "",
            f"reason {state.reason}" if state.reason else "",
        )
        if part
    )
    text = f"SLURM job {state.job_id} ({spec.name}) ended {state.state}{where}: {why}"
    text += f" [{details}]" if details else ""
    tail = log.read_text("utf-8", errors="replace").splitlines() if log.is_file() else []
    if tail:
        text += f"\nlast lines of {log}:\n" + "\n".join(tail[-LOG_TAIL_LINES:])
    else:
        text += f"\n(its log {log} is empty or missing)"
    return text


@dataclass
class _Launched:
    spec: JobSpec
    session: dg.PipesSession
    job_id: str
    state: JobState | None = None


def job_environment(config_path: str, config: GeoTripletConfig) -> dict[str, str]:
    """What the job must see as the Dagster step does, resolved here and written into the
    script: the config file, the data root and the backbone cache as absolute paths (a
    relative data root would otherwise resolve against the job's working directory)."""
    environment = {
        DATA_ROOT_ENV_VAR: str(config.data_root),
        CACHE_DIR_ENV_VAR: str(config.backbone_cache_dir),
    }
    chosen = config_path or os.environ.get(CONFIG_ENV_VAR)
    if chosen:
        environment[CONFIG_ENV_VAR] = str(Path(chosen).expanduser().resolve())
    if os.environ.get(OPTUNA_STORAGE_ENV_VAR):
        environment[STORAGE_REQUIRED_ENV_VAR] = "1"
    return environment


def run_jobs(
    context: dg.AssetExecutionContext,
    config: GeoTripletConfig,
    config_path: str,
    specs: list[JobSpec],
) -> list[_Launched]:
    """Submit SPECS together, wait for all of them, and return them finished; a job that did not
    complete fails the step with every failed job's description. Cancelling the run (or any
    error here) cancels the jobs still queued or running."""
    slurm = config.compute.slurm
    shared_environment = job_environment(config_path, config)
    launched: list[_Launched] = []
    with contextlib.ExitStack() as sessions:
        try:
            for spec in specs:
                spec.folder.mkdir(parents=True, exist_ok=True)
                session = sessions.enter_context(
                    dg.open_pipes_session(
                        context=context,
                        context_injector=dg.PipesFileContextInjector(
                            str(spec.folder / "pipes-context.json")
                        ),
                        message_reader=dg.PipesFileMessageReader(
                            str(spec.folder / "pipes-messages.jsonl")
                        ),
                    )
                )
                script = spec.folder / "job.sh"
                environment = {**shared_environment, **session.get_bootstrap_env_vars()}
                script.write_text(
                    batch_script(spec, slurm.python, slurm.account, slurm.qos, environment)
                )
                job_id = submit(script)
                context.log.info(f"submitted {spec.name} as SLURM job {job_id} ({script})")
                launched.append(_Launched(spec, session, job_id))
            _wait(context, launched, slurm.poll_interval_s)
        except BaseException:
            # a cancelled run arrives here as Dagster's interrupt
            running = [job.job_id for job in launched if job.state is None or job.state.active]
            if running:
                context.log.warning(f"cancelling SLURM jobs {', '.join(running)}")
                cancel(running)
            raise
    failed = [job for job in launched if job.state is None or job.state.state != "COMPLETED"]
    if failed:
        raise dg.Failure(
            "\n\n".join(
                failure_description(
                    job.spec, job.state, job.spec.folder / f"slurm-{job.job_id}.log"
                )
                for job in failed
                if job.state is not None
            )
        )
    return launched


def _wait(context: dg.AssetExecutionContext, launched: list[_Launched], every_s: float) -> None:
    pending = {job.job_id: job for job in launched}
    reported: dict[str, str] = {}
    failures = 0
    while pending:
        for job_id, job in list(pending.items()):
            try:
                state = job_state(job_id)
            except SlurmError as error:
                # a busy controller times out now and then: the jobs are left alone until it
                # has failed to answer POLL_RETRIES times in a row
                failures += 1
                if failures >= POLL_RETRIES:
                    raise
                context.log.warning(f"polling SLURM job {job_id} failed ({error}); retrying")
                break
            failures = 0
            if reported.get(job_id) != state.state:
                where = f" on {state.nodes}" if state.nodes and state.state == "RUNNING" else ""
                context.log.info(f"SLURM job {job_id} ({job.spec.name}): {state.state}{where}")
                reported[job_id] = state.state
            if not state.active:
                job.state = state
                del pending[job_id]
        if pending:
            time.sleep(every_s)


def job_figures(job: _Launched) -> dict[str, object]:
    """Where and how long a finished job ran, for the step's metadata."""
    state = job.state
    assert state is not None
    queued = state.seconds(state.submitted, state.started)
    ran = state.seconds(state.started, state.ended)
    return {
        "job_id": job.job_id,
        "node": state.nodes,
        "queued_s": queued,
        "ran_s": ran,
    }


def _folder(config: GeoTripletConfig, context: dg.AssetExecutionContext, name: str) -> Path:
    return config.resolve(config.compute.slurm.job_dir) / context.run_id / name


def run_step_on_slurm(
    context: dg.AssetExecutionContext, config: GeoTripletConfig, config_path: str, step: str
) -> dg.MaterializeResult:
    """STEP's work as one SLURM job; its materialisation as the job reported it, with where
    and how long the job ran."""
    partition = context.partition_key if context.has_partition_key else None
    name = f"geotriplet-{step}" + (f"-{partition}" if partition else "")
    spec = JobSpec(
        step=step,
        name=name,
        arguments=(),
        resources=getattr(config.compute.slurm, step),
        folder=_folder(config, context, name),
        config_key=step,
    )
    (job,) = run_jobs(context, config, config_path, [spec])
    messages = job.session.get_custom_messages()
    if not messages:
        raise dg.Failure(
            f"SLURM job {job.job_id} ({name}) completed without reporting its result; see "
            f"{spec.folder}"
        )
    figures = job_figures(job)
    return dg.MaterializeResult(
        metadata={
            **deserialized_metadata(messages[-1]),
            **{f"slurm_{key}": value for key, value in figures.items()},
        }
    )


def trials_per_worker(n_trials: int, workers: int) -> list[int]:
    """N_TRIALS shared as evenly as they go among at most WORKERS workers."""
    count = min(n_trials, workers)
    return [n_trials // count + (index < n_trials % count) for index in range(count)]


def run_trials_on_slurm(
    context: dg.AssetExecutionContext,
    config: GeoTripletConfig,
    config_path: str,
    n_trials: int,
    storage: str,
) -> dict[str, object]:
    """N_TRIALS trials of the study as parallel SLURM jobs sharing its STORAGE; the jobs'
    figures for the step's metadata."""
    resources = config.compute.slurm.hyperparameter_search
    if storage.startswith("sqlite") and min(resources.workers, n_trials) > 1:
        raise dg.Failure(
            f"{resources.workers} parallel trial workers cannot share the SQLite study "
            f"{storage}: set optuna.storage (or GEOTRIPLET_OPTUNA_STORAGE) to a server database "
            "such as Postgres, or compute.slurm.hyperparameter_search.workers to 1"
        )
    specs = [
        JobSpec(
            step="trials",
            name=f"geotriplet-trials-{worker}",
            arguments=("--trials", str(count), "--worker", str(worker)),
            resources=resources,
            folder=_folder(config, context, f"geotriplet-trials-{worker}"),
            config_key="hyperparameter_search",
        )
        for worker, count in enumerate(trials_per_worker(n_trials, resources.workers))
    ]
    jobs = run_jobs(context, config, config_path, specs)
    return {
        "slurm_workers": len(jobs),
        "slurm_jobs": dg.MetadataValue.json([job_figures(job) for job in jobs]),
    }
