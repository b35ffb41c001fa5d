"""Resident memory of a process and all its descendants, sampled from /proc in a thread.

Each sample records, over the tree: the largest VmRSS of any one process, the sum of VmRSS,
and the sum of RssAnon (anonymous memory: heap, arrays, not the page cache of mapped files).
A memory map of a file in the page cache counts in VmRSS (as RssFile), not in RssAnon.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_KIB = 1024


@dataclass(frozen=True)
class MemorySample:
    at: float  # time.time()
    max_rss: int  # bytes, the largest process
    max_rss_pid: int
    sum_rss: int  # bytes, the whole tree
    sum_anon: int  # bytes, RssAnon over the whole tree
    max_anon: int  # bytes, the largest RssAnon of one process


def _status(pid: int) -> dict[str, int]:
    values = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:  # the process ended between listing and reading
        return values
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            values[name] = int(rest.split()[0]) * _KIB
    return values


def _children_of() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def tree_pids(root: int) -> list[int]:
    children = _children_of()
    pids, stack = [], [root]
    while stack:
        pid = stack.pop()
        pids.append(pid)
        stack.extend(children.get(pid, ()))
    return pids


def sample_tree(root: int) -> MemorySample:
    max_rss = max_pid = sum_rss = sum_anon = max_anon = 0
    for pid in tree_pids(root):
        values = _status(pid)
        rss, anon = values.get("VmRSS", 0), values.get("RssAnon", 0)
        sum_rss += rss
        sum_anon += anon
        max_anon = max(max_anon, anon)
        if rss > max_rss:
            max_rss, max_pid = rss, pid
    return MemorySample(time.time(), max_rss, max_pid, sum_rss, sum_anon, max_anon)


class TreeSampler:
    """Samples the tree under ROOT every INTERVAL_S seconds until stopped."""

    def __init__(self, root: int, interval_s: float = 0.25) -> None:
        self.root = root
        self.interval_s = interval_s
        self.samples: list[MemorySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append(sample_tree(self.root))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = float("-inf"), end: float = float("inf")) -> dict[str, int]:
        """Largest values of the samples taken between START and END (time.time())."""
        chosen = [s for s in self.samples if start <= s.at <= end]
        if not chosen and self.samples:  # a step shorter than the interval: the nearest sample
            chosen = [min(self.samples, key=lambda s: abs(s.at - (start + end) / 2))]
        return {
            "max_rss": max((s.max_rss for s in chosen), default=0),
            "sum_rss": max((s.sum_rss for s in chosen), default=0),
            "sum_anon": max((s.sum_anon for s in chosen), default=0),
            "max_anon": max((s.max_anon for s in chosen), default=0),
        }
