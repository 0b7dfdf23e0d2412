"""Subprocesses for the Celery benchmarks: `celery -A worker worker` and the simulator,
started by the tests' launcher (tests/support/processes.py); logs go to files under
$TMPDIR/zd-bench/logs/ (outside the repository).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import redis

from tests.support.processes import (
    Launcher,
    ServiceProcess,
    producer,
    python_argv,
    start_worker,
    worker_hostname,
)

__all__ = ["Broker", "Simulator", "Worker", "launcher", "producer"]

LOGS = Path(tempfile.gettempdir()) / "zd-bench" / "logs"


def launcher() -> Launcher:
    return Launcher(LOGS)


class Simulator:
    """`python -m bench.simulator`: the Evolution simulator in its own process."""

    def __init__(self, instances: list[str], env: dict[str, str]) -> None:
        self.process = launcher().start(
            python_argv("bench.simulator", ",".join(instances)),
            env,
            "simulator",
            stdin=subprocess.PIPE,
        )
        line = self.process.wait_for("url=", 30).split("url=", 1)[1].split()[0]
        self.url = line.strip()

    def set_latency(self, ms: float) -> None:
        httpx.put(f"{self.url}/_sim/config", json={"latency_ms": ms}, timeout=10).raise_for_status()

    def accepted(self) -> int:
        stats = httpx.get(f"{self.url}/_sim/stats", timeout=10).json()
        return sum(int(i["accepted"]) for i in stats["instances"].values())

    def stop(self) -> None:
        self.process.stop()


class Worker:
    """`celery -A worker worker -I INCLUDE`, consuming the project's queues; ready."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        pool: str,
        concurrency: int,
        name: str,
        include: Iterable[str] = ("bench.noop_tasks",),
    ) -> None:
        self.hostname = worker_hostname(name)
        self.process: ServiceProcess = start_worker(
            launcher().celery, env, pool=pool, concurrency=concurrency, name=name, include=include
        )

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def rss_mb(self) -> float:
        return self.process.rss_mb()

    def stop(self) -> None:
        self.process.stop()


class Broker:
    """Reads the Redis transport's own keys: the queue list and the unacked hash."""

    def __init__(self, client: redis.Redis, queue: str = "celery") -> None:
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
