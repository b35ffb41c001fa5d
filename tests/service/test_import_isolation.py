from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

from tests.factories.imports import imported_modules

FORBIDDEN = ("torch", "timm", "lightning", "dagster", "pandas")


def test_the_service_imports_no_training_or_pipeline_stack() -> None:
    code = (
        "import json, sys\n"
        "import service.app, geotriplet_assets.bundle.load\n"
        "service.app.create_app()\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_requirements_name_every_third_party_import_of_the_service() -> None:
    root = Path(__file__).resolve().parents[2]
    requirements = (root / "service" / "requirements.txt").read_text()
    required = {
        _normalised(re.split(r"[\[<>=~ ]", line.strip())[0])
        for line in requirements.splitlines()
        if line.strip() and not line.startswith("#")
    }
    # The service image installs the project without dependencies: what the service imports
    # of the project (the bundle contract and the geometry under it) needs these too.
    sources = [
        *(root / "service").glob("*.py"),
        *(root / "geotriplet_assets" / "bundle").glob("*.py"),
        root / "geotriplet_assets" / "geodesy.py",
    ]
    third_party = (
        imported_modules(sources) - set(sys.stdlib_module_names) - {"service", "geotriplet_assets"}
    )
    distributions = importlib.metadata.packages_distributions()
    needed = {_normalised(distributions[name][0]) for name in third_party}
    # starlette comes with fastapi, pydantic-core with pydantic.
    needed -= {"starlette", "pydantic-core"}
    assert needed <= required, f"missing from requirements.txt: {needed - required}"
    assert {"uvicorn", "python-multipart"} <= required


def _normalised(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()
