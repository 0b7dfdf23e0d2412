"""End-to-end helpers: real `celery -A worker worker` subprocesses on this test's services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from celery import Celery

from tests.services import ROOT

READY_TIMEOUT_SECONDS = 60.0


class CeleryProcess:
    """A Celery CLI subprocess whose combined output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not seen; output:\n{self.output()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (prefork children too)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def service_env(**values: str) -> dict[str, str]:
    """The environment of a zapdispatch process: ours, minus anything a .env could add."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZD_", "PYTEST"))}
    env.update({"PYTHONUNBUFFERED": "1", **values})
    return env


@pytest.fixture
def start_celery(tmp_path: Path) -> Iterator[Callable[..., CeleryProcess]]:
    started: list[CeleryProcess] = []

    def start(args: list[str], env: dict[str, str], name: str = "worker") -> CeleryProcess:
        process = CeleryProcess(args, env, tmp_path / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def start_worker(
    start: Callable[..., CeleryProcess],
    env: dict[str, str],
    *,
    concurrency: int = 4,
    pool: str = "prefork",
    name: str = "worker",
) -> CeleryProcess:
    """`celery -A worker worker` consuming every queue; returns once it is ready."""
    worker = start(
        [
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--hostname={name}-{os.getpid()}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        name,
    )
    worker.wait_for("ready.")
    return worker


def producer(redis_url: str) -> Celery:
    """A producer without this code base: plain Celery, JSON, `send_task` by name."""
    app = Celery("producer", broker=redis_url)
    app.conf.update(task_serializer="json", accept_content=["json"])
    return app


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def temp_schedule_file() -> str:
    return tempfile.mktemp(prefix="zd-beat-", suffix=".db")
