"""Progress reporting from inside assets to whoever drives the run.

Assets report through `report_progress`; the CLI, which materialises in-process, installs a
sink that draws a progress bar. Without a sink (the Dagster UI), progress goes to the run log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

ProgressSink = Callable[[str, int, int], None]
PROGRESS_LOG_INTERVAL_S = 10.0

_sinks: list[ProgressSink] = []


class StepLog(Protocol):
    """Where a step's messages go: the Dagster run log (context.log) in a local step, Dagster
    Pipes' log in a SLURM job; both reach the run's log in the UI."""

    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...


@contextmanager
def progress_sink(sink: ProgressSink) -> Iterator[None]:
    """Route progress of assets run in this process to SINK(stage, done, total)."""
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.remove(sink)


def report_progress(stage: str, done: int, total: int) -> None:
    for sink in _sinks:
        sink(stage, done, total)


def logged_progress(
    stage: str,
    log: Callable[[str], None],
    describe: Callable[[int, int], str],
    *,
    log_when_done: bool = True,
) -> Callable[[int, int], None]:
    """A PROGRESS(done, total) callback for STAGE: every call reaches the sinks, and the run
    log gets DESCRIBE(done, total) every PROGRESS_LOG_INTERVAL_S seconds and, with
    LOG_WHEN_DONE (for a TOTAL known from the start), once DONE reaches it."""
    last_logged = time.monotonic()

    def on_progress(done: int, total: int) -> None:
        nonlocal last_logged
        report_progress(stage, done, total)
        now = time.monotonic()
        if now - last_logged > PROGRESS_LOG_INTERVAL_S or (log_when_done and done == total):
            last_logged = now
            log(describe(done, total))

    return on_progress
