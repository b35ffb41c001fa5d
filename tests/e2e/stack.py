"""The compose stack under test, as the driver (run_compose_e2e.sh) describes it."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAGSTER_URL_ENV_VAR = "GEOTRIPLET_E2E_DAGSTER_URL"


@dataclass(frozen=True)
class Stack:
    dagster_url: str
    service_url: str
    compose: tuple[str, ...]
    artifacts: Path
    up_started_at: float

    @classmethod
    def from_environment(cls) -> Stack | None:
        """The stack the driver started, or None when the tests run outside the driver."""
        if not os.environ.get(DAGSTER_URL_ENV_VAR):
            return None
        return cls(
            dagster_url=os.environ[DAGSTER_URL_ENV_VAR],
            service_url=os.environ["GEOTRIPLET_E2E_SERVICE_URL"],
            compose=tuple(shlex.split(os.environ["GEOTRIPLET_E2E_COMPOSE"])),
            artifacts=Path(os.environ["GEOTRIPLET_E2E_ARTIFACTS"]),
            up_started_at=float(os.environ["GEOTRIPLET_E2E_UP_STARTED_AT"]),
        )

    def run_in(self, service: str, *command: str) -> bytes:
        """COMMAND's stdout, run in a running container of SERVICE."""
        completed = subprocess.run(
            [*self.compose, "exec", "-T", service, *command],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} in {service} failed ({completed.returncode}): "
                f"{completed.stderr.decode(errors='replace')}"
            )
        return completed.stdout
