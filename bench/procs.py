"""Subprocesses for the Celery benchmarks: `celery -A worker worker` and the simulator.

Ideas taken from tests/e2e/conftest.py (not imported: it is pytest-only). Each process runs
in its own session so that stopping it stops its prefork children too; logs go to files
under $TMPDIR/zd-bench/logs/ (outside the repository).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import redis
from celery import Celery

from bench.env import ROOT

LOGS = Path(tempfile.gettempdir()) / "zd-bench" / "logs"
READY_TIMEOUT_SECONDS = 90.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


class Process:
    def __init__(
        self, argv: list[str], env: dict[str, str], name: str, *, stdin: int | None = None
    ) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOGS / f"{name}.log"
        self._log = self.log_path.open("wb")
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: {text!r} not seen; output:\n{self.output()[-3000:]}")

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
        """user + system CPU of the live processes of the group."""
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

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


class Simulator(Process):
    def __init__(self, instances: list[str], env: dict[str, str]) -> None:
        super().__init__(
            [sys.executable, "-m", "bench.simulator", ",".join(instances)],
            env,
            "simulator",
            stdin=subprocess.PIPE,
        )
        line = self.wait_for("url=", 30).split("url=", 1)[1].split()[0]
        self.url = line.strip()

    def set_latency(self, ms: float) -> None:
        httpx.put(f"{self.url}/_sim/config", json={"latency_ms": ms}, timeout=10).raise_for_status()

    def accepted(self) -> int:
        stats = httpx.get(f"{self.url}/_sim/stats", timeout=10).json()
        return sum(int(i["accepted"]) for i in stats["instances"].values())

    def stop(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        super().stop()


class Worker(Process):
    """`celery -A worker worker -I bench.noop_tasks`, consuming the project's queues."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        pool: str,
        concurrency: int,
        name: str,
        include: str = "bench.noop_tasks",
    ) -> None:
        self.hostname = f"{name}-{os.getpid()}@bench"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "worker",
            "worker",
            "-I",
            include,
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            f"--hostname={self.hostname}",
            "--without-mingle",
            "--without-gossip",
        ]
        super().__init__(argv, env, name)
        self.wait_for("ready.")


def producer(redis_url: str) -> Celery:
    """A plain Celery producer: JSON, `send_task` by name, nothing of this code base."""
    app = Celery("bench-producer", broker=redis_url)
    app.conf.update(
        task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True
    )
    return app


class Broker:
    """Reads the Redis transport's own keys: the queue list and the unacked hash."""

    def __init__(self, client: redis.Redis[Any], queue: str = "celery") -> None:
        self._client = client
        self._queue = queue

    def pending(self) -> int:
        pipe = self._client.pipeline(transaction=False)
        pipe.llen(self._queue)
        pipe.hlen("unacked")
        waiting, unacked = pipe.execute()
        return int(waiting) + int(unacked)

    def wait_first_taken(self, published: int, timeout: float) -> float:
        """Block until a worker has taken the first of `published` messages; returns the
        perf_counter() of that poll (1 ms resolution). Starting the clock here keeps the
        consumer's restart latency (up to one BRPOP timeout, 1 s) out of the figures."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if int(self._client.llen(self._queue)) < published:
                return time.perf_counter()
            time.sleep(0.001)
        raise TimeoutError(f"no message taken within {timeout:.0f} s")

    def wait_drained(self, timeout: float, poll: float = 0.01) -> float:
        """Block until queue and unacked set are empty on two polls in a row; returns the
        perf_counter() of the first of those polls."""
        deadline = time.perf_counter() + timeout
        first_empty: float | None = None
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            if self.pending() == 0:
                if first_empty is not None:
                    return first_empty
                first_empty = now
            else:
                first_empty = None
            time.sleep(poll)
        raise TimeoutError(f"queue not drained after {timeout:.0f} s ({self.pending()} left)")
