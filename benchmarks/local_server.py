"""The retrieval service as a real uvicorn server process on loopback, for the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

REPOSITORY = Path(__file__).resolve().parent.parent
_READY_POLL_S = 0.025


class ServerFailed(RuntimeError):
    """The server exited or did not become ready in time."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalServer:
    """`uvicorn --factory service.app:create_app` on 127.0.0.1 serving BUNDLES_DIR, started as
    `geotriplet serve` starts it (log level info, access log on); its output goes to LOG_PATH.
    ENVIRONMENT holds extra variables, e.g. {"GEOTRIPLET_SERVICE_POLL_INTERVAL_S": "0.5"}."""

    def __init__(
        self, bundles_dir: Path, log_path: Path, environment: dict[str, str] | None = None
    ) -> None:
        self.bundles_dir = bundles_dir
        self.log_path = log_path
        self.environment = environment or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerFailed("the server is not running")
        return self._process.pid

    def start(self) -> None:
        environment = dict(
            os.environ, GEOTRIPLET_SERVICE_BUNDLES_DIR=str(self.bundles_dir), **self.environment
        )
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "service.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "info",
        ]
        with self.log_path.open("ab") as log:
            self._started_at = time.perf_counter()
            self._process = subprocess.Popen(
                command, cwd=REPOSITORY, env=environment, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout_s: float = 600.0) -> float:
        """Seconds from `start` until GET /ready answered 200."""
        deadline = time.perf_counter() + timeout_s
        with httpx.Client(base_url=self.url, timeout=5.0) as client:
            while time.perf_counter() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    raise ServerFailed(
                        f"the server exited with status {self._process.returncode}; "
                        f"see {self.log_path}"
                    )
                try:
                    if client.get("/ready").status_code == 200:
                        return time.perf_counter() - self._started_at
                except httpx.TransportError:
                    pass
                time.sleep(_READY_POLL_S)
        raise ServerFailed(f"not ready after {timeout_s:.0f} s; see {self.log_path}")

    def memory_mib(self) -> dict[str, float]:
        """VmRSS, RssAnon and RssFile of the server process, in MiB."""
        wanted = ("VmRSS", "RssAnon", "RssFile")
        values = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in wanted:
                values[name] = int(rest.split()[0]) / 1024  # the kernel reports kB
        return values

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far (all its threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # Fields after the command name, which is in parentheses and may hold spaces;
        # utime and stime are fields 14 and 15 of proc(5).
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
