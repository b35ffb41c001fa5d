from __future__ import annotations

import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from tests.factories.imports import imported_modules

ROOT = Path(__file__).resolve().parents[1]


def test_dependencies_name_every_third_party_import_of_the_pipeline() -> None:
    # The pipeline image installs project.dependencies only (never the dev extra): an import
    # the pipeline makes, at module level or inside a function, must be listed there.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = {_normalised(re.split(r"[\[<>=~ ;]", line)[0]) for line in project["dependencies"]}
    imported = imported_modules((ROOT / "geotriplet_assets").rglob("*.py"))
    third_party = imported - set(sys.stdlib_module_names) - {"geotriplet_assets", "service"}
    distributions = importlib.metadata.packages_distributions()
    unknown = {name for name in third_party if name not in distributions}
    assert not unknown, f"imported but not installed: {unknown}"
    needed = {_normalised(distributions[name][0]) for name in third_party}
    # pydantic-core comes with pydantic, starlette with fastapi.
    needed -= {"pydantic-core", "starlette"}
    assert needed <= required, f"missing from project.dependencies: {needed - required}"


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()
