"""The CLI as a newcomer runs it, inside a test: a Dagster home of its own under a folder
(telemetry off) and no config or data root inherited from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def isolated_cli(root: Path) -> Iterator[Path]:
    """Within it, `geotriplet` records its runs in ROOT/dagster_home (yielded)."""
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        patch.delenv("GEOTRIPLET_CONFIG", raising=False)
        patch.delenv("GEOTRIPLET_DATA_ROOT", raising=False)
        yield home
