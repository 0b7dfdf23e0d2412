"""Importing the command line, routing, the limiter or the API builds no Celery app: each
import runs in a fresh interpreter, which then reports whether Celery was loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


#: Modules whose import must not load Celery (the worker's side imports them too).
NO_CELERY = (
    "worker.cli",
    "worker.routing",
    "worker.limiter",
    "worker.api.app",
    "worker.monitor.health_check",
    "worker.delivery",
)


def test_importing_loads_no_celery() -> None:
    """One fresh interpreter imports each module in turn and names the first that loaded
    Celery (one interpreter, not one each: each start costs about 2 s of CPU)."""
    probe = (
        "import importlib, sys\n"
        f"for name in {NO_CELERY!r}:\n"
        "    importlib.import_module(name)\n"
        "    if 'celery' in sys.modules:\n"
        "        print(name); break\n"
        "else:\n"
        "    print('none')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "none", done.stdout + done.stderr


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


def test_every_signal_handler_is_connected_once_by_the_bootstrap() -> None:
    """Importing the modules that hold handlers connects nothing; building the app connects
    the bootstrap's handlers, each once."""
    probe = """
import weakref
import celery.signals as s
from worker import bootstrap, celery_masking, heartbeat, resources
from worker.monitor import health_check
named = ("worker_init", "worker_process_init", "worker_process_shutdown", "worker_shutdown",
         "before_task_publish", "after_setup_logger", "after_setup_task_logger")
def ours():
    found = [r() if isinstance(r, weakref.ref) else r
             for n in named for _, r in getattr(s, n).receivers]
    return sum(1 for r in found if getattr(r, "__module__", "").startswith("worker"))
before = ours()
import worker.celery_app
print(before, ours())
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["0", "7"], done.stdout + done.stderr
