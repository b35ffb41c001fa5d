"""Progress reporting from inside assets to whoever drives the run.

Assets report through `report_progress`; the CLI, which materialises in-process, installs a
sink that draws a progress bar. Without a sink (the Dagster UI), progress goes to the run log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressSink = Callable[[str, int, int], None]

_sinks: list[ProgressSink] = []


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
