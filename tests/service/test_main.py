"""`python -m service`: its options, and bad ones refused before anything starts."""

from __future__ import annotations

import subprocess
import sys


def test_the_module_documents_its_options() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "service", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for option in ("--bundles-dir", "--host", "--port", "--log-level"):
        assert option in shown


def test_a_bad_option_is_refused_with_its_name() -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "service", "--log-level", "loud"], capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "--log-level" in refused.stderr and "loud" in refused.stderr
