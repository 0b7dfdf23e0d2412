"""Issue 7.1 and 7.2: real `celery -A worker worker` subprocesses against a bare no-op task.

One worker per pool configuration, started with `-I bench.noop_tasks`, runs both the bare
no-op task (`bench.noop`) and the pipeline (`zapdispatch.send_message`: intake, route,
reserve, send to the Evolution simulator, record). Same process, broker, pool, concurrency
and settings for both, by construction.

A trial: the worker stops consuming (`cancel_consumer`), the bench publishes N tasks, the
worker starts consuming again (`add_consumer`) and the clock runs until the broker's queue
and unacked set are empty. Trials alternate bare / pipeline, so load drifts of this noisy
machine hit both alike; each figure is a median of per-pair ratios.

7.2 measures the pipeline against the simulator answering in 300 ms: throughput ÷ ideal,
where ideal = concurrency ÷ 0.3 s (every slot busy waiting on Evolution all the time).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import Engine, create_engine, text

from bench.env import BenchEnv
from bench.noop_tasks import NOOP, SLEEP
from bench.procs import Broker, Simulator, Worker, producer, running
from worker.celery_app import MESSAGES_QUEUE, SEND_MESSAGE

INSTANCES = ["inst-a", "inst-b", "inst-c"]
CONTACTS = 500
HOURLY_CAP = 1_000_000
DAILY_CAP = 10_000_000
#: (pool, concurrency) of the overhead comparison (7.1).
OVERHEAD_POOLS = (("prefork", 2), ("threads", 8))
OVERHEAD_TRIALS = 3
BARE_TASKS = 1500
PIPELINE_TASKS = 600
#: (pool, concurrency) of the I/O comparison (7.2), simulator latency 300 ms.
IO_LATENCY_MS = 300.0
IO_POOLS = (("threads", 16), ("threads", 32), ("threads", 64), ("prefork", 16))
IO_WAVES = 6
IO_TRIALS = 2
DRAIN_TIMEOUT_SECONDS = 240.0

_serial = itertools.count()


@dataclass
class Trial:
    kind: str
    tasks: int
    seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds


class Bench:
    def __init__(self, env: BenchEnv, engine: Engine, sim: Simulator) -> None:
        self.env = env
        self.engine = engine
        self.sim = sim
        self.app: Celery = producer(env.redis_url)
        self.broker = Broker(env.redis(), MESSAGES_QUEUE)

    def worker(self, pool: str, concurrency: int) -> Worker:
        name = f"worker-{pool}-{concurrency}"
        return Worker(self.env.worker_env(EVOLUTION_API_URL=self.sim.url), pool=pool,
                      concurrency=concurrency, name=name)

    def publish(self, kind: str, count: int) -> None:
        for _ in range(count):
            if kind == "bare":
                self.app.send_task(NOOP, queue=MESSAGES_QUEUE)
                continue
            if kind == "sleep":
                self.app.send_task(SLEEP, args=[IO_LATENCY_MS / 1000], queue=MESSAGES_QUEUE)
                continue
            n = next(_serial)
            c = n % CONTACTS
            self.app.send_task(SEND_MESSAGE, queue=MESSAGES_QUEUE, kwargs={
                "phone": f"+55 11 9{c // 10_000:04d}-{c % 10_000:04d}",
                "text": f"bench {n}", "contact_id": f"doctor-{c}"})

    def _control(self, action: Callable[..., Any], worker: Worker) -> None:
        replies = action(MESSAGES_QUEUE, destination=[worker.hostname], reply=True, timeout=10)
        if not replies:
            raise RuntimeError(f"{worker.name} did not answer {action.__name__}")

    def trial(self, worker: Worker, kind: str, count: int) -> Trial:
        """Publish `count` tasks while the worker is not consuming, then time the drain."""
        self._control(self.app.control.cancel_consumer, worker)
        self.broker.wait_drained(DRAIN_TIMEOUT_SECONDS)
        sent_before = self.sent()
        self.publish(kind, count)
        cpu_before = worker.cpu_seconds()
        self._control(self.app.control.add_consumer, worker)
        started = self.broker.wait_first_taken(count, DRAIN_TIMEOUT_SECONDS)
        ended = self.broker.wait_drained(DRAIN_TIMEOUT_SECONDS)
        trial = Trial(kind, count, ended - started, worker.cpu_seconds() - cpu_before)
        if kind == "pipeline" and self.sent() - sent_before != count:
            raise RuntimeError(f"{count} published, {self.sent() - sent_before} sent; see logs")
        return trial

    def sent(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM messages WHERE state = 'sent'")).scalar_one())


def run(env: BenchEnv, *, overhead: bool = True, io: bool = True) -> dict[str, Any]:
    engine = create_engine(env.database_url)
    env.reset(engine)
    with engine.begin() as conn:
        for name in INSTANCES:
            conn.execute(text(
                "INSERT INTO instances (name, phone, status, hourly_cap, daily_cap, active, "
                "consecutive_failures) VALUES (:n, '5511900000000', 'connected', :h, :d, "
                "true, 0)"), {"n": name, "h": HOURLY_CAP, "d": DAILY_CAP})
    sim = Simulator(INSTANCES, env.worker_env())
    out: dict[str, Any] = {}
    try:
        bench = Bench(env, engine, sim)
        if overhead:
            out["overhead"] = [_overhead(bench, pool, c) for pool, c in OVERHEAD_POOLS]
        if io:
            sim.set_latency(IO_LATENCY_MS)
            out["io"] = [_io(bench, pool, c) for pool, c in IO_POOLS]
    finally:
        sim.stop()
        engine.dispose()
    return out


def _overhead(bench: Bench, pool: str, concurrency: int) -> dict[str, Any]:
    worker = bench.worker(pool, concurrency)
    with running(worker):
        bench.trial(worker, "bare", 200)  # warm-up: imports, connections, caches
        bench.trial(worker, "pipeline", 100)
        pairs = [(bench.trial(worker, "bare", BARE_TASKS),
                  bench.trial(worker, "pipeline", PIPELINE_TASKS))
                 for _ in range(OVERHEAD_TRIALS)]
        rss = worker.rss_mb()
    ratios = [p.per_second / b.per_second for b, p in pairs]
    return {
        "pool": pool, "concurrency": concurrency,
        "bare_per_second": round(statistics.median(b.per_second for b, _ in pairs), 1),
        "pipeline_per_second": round(statistics.median(p.per_second for _, p in pairs), 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "cpu_ms_per_task_bare": round(statistics.median(
            1000 * b.cpu_seconds / b.tasks for b, _ in pairs), 2),
        "cpu_ms_per_task_pipeline": round(statistics.median(
            1000 * p.cpu_seconds / p.tasks for _, p in pairs), 2),
        "worker_rss_mb": round(rss),
    }


def _io(bench: Bench, pool: str, concurrency: int) -> dict[str, Any]:
    worker = bench.worker(pool, concurrency)
    count = concurrency * IO_WAVES
    ideal = concurrency / (IO_LATENCY_MS / 1000)
    with running(worker):
        bench.trial(worker, "pipeline", concurrency * 2)  # warm-up every pool slot
        pairs = [(bench.trial(worker, "sleep", count), bench.trial(worker, "pipeline", count))
                 for _ in range(IO_TRIALS)]
        rss = worker.rss_mb()
    rate = statistics.median(p.per_second for _, p in pairs)
    bare = statistics.median(b.per_second for b, _ in pairs)
    return {
        "pool": pool, "concurrency": concurrency, "latency_ms": IO_LATENCY_MS,
        "messages": count, "per_second": round(rate, 1), "ideal_per_second": round(ideal, 1),
        "ratio": round(rate / ideal, 3),
        "ratios": [round(p.per_second / ideal, 3) for _, p in pairs],
        "bare_sleep_per_second": round(bare, 1),
        "bare_sleep_ratio": round(bare / ideal, 3),
        "pipeline_vs_bare_sleep": round(statistics.median(
            p.per_second / b.per_second for b, p in pairs), 3),
        "cpu_ms_per_message": round(statistics.median(
            1000 * p.cpu_seconds / p.tasks for _, p in pairs), 2),
        "worker_rss_mb": round(rss),
    }
