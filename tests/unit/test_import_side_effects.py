"""Importing the command line, routing, the limiter or the API builds no Celery app: each
import runs in a fresh interpreter, which then reports whether Celery was loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module", ["worker.cli", "worker.routing", "worker.limiter", "worker.api.app"]
)
def test_importing_loads_no_celery(module: str) -> None:
    probe = f"import sys, {module}; print('celery' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False", done.stderr


def test_python_dash_m_runs_the_console_script() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("Usage: zapdispatch ")
    for group in ("instances", "messages", "contacts", "campaigns", "deadletters", "numbers"):
        assert group in done.stdout
