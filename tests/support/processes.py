"""Processes as an operator starts them: `celery -A worker worker|beat|flower`,
`zapdispatch api`, and any `python -m MODULE`, each in its own session (stopping one stops
its prefork children too) with its combined output in a log file.

A `Launcher` starts processes into one log directory and stops them all at the end; the
e2e and chaos fixtures and the benchmarks use it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx
from celery import Celery

from tests.support.services import ROOT

#: How long a worker may take to print "ready." (seconds).
READY_TIMEOUT_SECONDS = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class ServiceProcess:
    """A subprocess in its own session, its stdout and stderr in `log_path`."""

    def __init__(
        self, argv: list[str], env: dict[str, str], log_path: Path, *, stdin: int | None = None
    ) -> None:
        self.name = log_path.stem
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=stdin,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = READY_TIMEOUT_SECONDS) -> str:
        """Block until `text` is in the output (returned); AssertionError if the process
        exits or `timeout` seconds pass first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name}: {text!r} not seen; output:\n{self.output()[-4000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (prefork children too) and wait for the leader."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL if it is still there after 30 s."""
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def group(self) -> list[int]:
        """Pids of this process's group (the worker and its pool children)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) == self.proc.pid:  # pgid
                        pids.append(int(entry.name))
        return pids

    def cpu_seconds(self) -> float:
        """user + system CPU seconds of the live processes of the group."""
        total = 0
        for pid in self.group():
            with contextlib.suppress(OSError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        return total / CLK_TCK

    def rss_mb(self) -> float:
        """Resident memory of the group, MB (shared pages counted once per process)."""
        total = 0
        for pid in self.group():
            with contextlib.suppress(OSError, IndexError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        return total / 1024


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def celery_argv(*args: str) -> list[str]:
    """`celery -A worker ARGS`."""
    return python_argv("celery", "-A", "worker", *args)


def worker_args(
    *, pool: str, concurrency: int, hostname: str, include: Iterable[str] = ()
) -> list[str]:
    """Arguments of `celery -A worker` for a worker consuming every queue, without mingle
    and gossip (they only slow the start); `include` adds task modules (`-I`)."""
    modules = ",".join(include)
    return [
        "worker",
        *(["-I", modules] if modules else []),
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        "--loglevel=INFO",
        f"--hostname={hostname}",
        "--without-mingle",
        "--without-gossip",
    ]


class Launcher:
    """Starts processes with their logs in `logs`; `stop_all` stops them."""

    def __init__(self, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        self.started: list[ServiceProcess] = []

    def start(
        self, argv: list[str], env: dict[str, str], name: str, *, stdin: int | None = None
    ) -> ServiceProcess:
        log = self.logs / f"{name}-{len(self.started)}.log"
        process = ServiceProcess(argv, env, log, stdin=stdin)
        self.started.append(process)
        return process

    def celery(self, args: list[str], env: dict[str, str], name: str = "worker") -> ServiceProcess:
        """`celery -A worker ARGS`, not waited for."""
        return self.start(celery_argv(*args), env, name)

    def api(self, env: dict[str, str], port: int) -> ServiceProcess:
        """`zapdispatch api --port PORT`; returns once it answers /livez."""
        api = self.start(python_argv("worker.cli", "api", "--port", str(port)), env, "api")
        wait_until(lambda: answers(f"http://127.0.0.1:{port}"), 30, "the API to answer")
        return api

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


def worker_hostname(name: str) -> str:
    """A worker node name unique to this run (the test's or the bench's process id)."""
    return f"{name}-{os.getpid()}@localhost"


def start_worker(
    start: Callable[..., ServiceProcess],
    env: dict[str, str],
    *,
    concurrency: int = 4,
    pool: str = "prefork",
    name: str = "worker",
    include: Iterable[str] = (),
) -> ServiceProcess:
    """A worker through `start(args, env, name)` (a `Launcher.celery`); returns once it is
    ready. Its node name is `worker_hostname(name)`."""
    args = worker_args(
        pool=pool, concurrency=concurrency, hostname=worker_hostname(name), include=include
    )
    worker = start(args, env, name)
    worker.wait_for("ready.")
    return worker


def answers(url: str) -> bool:
    """True when `url`/livez answers 200 within a second."""
    try:
        return httpx.get(f"{url}/livez", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def service_env(**values: str) -> dict[str, str]:
    """The environment of a zapdispatch process: ours, minus anything a .env could add."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZD_", "PYTEST"))}
    env.update({"PYTHONUNBUFFERED": "1", **values})
    return env


def producer(redis_url: str) -> Celery:
    """A producer without this code base: plain Celery, JSON, `send_task` by name."""
    app = Celery("producer", broker=redis_url)
    app.conf.update(
        task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True
    )
    return app


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll `predicate` every `interval` seconds; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
