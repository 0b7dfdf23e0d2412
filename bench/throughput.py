"""Issue 7.1 and 7.2: real `celery -A worker worker` subprocesses against bare Celery tasks.

Each pool configuration starts its worker(s) with `-I bench.noop_tasks`, so the same
processes (broker, pool, concurrency, settings) run both the bare tasks (`bench.noop`,
`bench.sleep`) and the pipeline (`zapdispatch.send_message`: intake, route, reserve, send
to the Evolution simulator, record). Bare and pipeline are the same by construction.

A trial: the workers stop consuming (`cancel_consumer`), the bench publishes N tasks, the
workers consume again (`add_consumer`); the clock starts when the first message is taken
and stops when the broker's queue and unacked set are empty. Trials alternate bare /
pipeline so that load drifts on this noisy machine hit both alike; a figure is the median
of per-pair ratios.

7.1: zero-latency simulator; pipeline msg/s ÷ bare no-op msg/s.
7.2: simulator answering in 300 ms; pipeline msg/s ÷ ideal (concurrency ÷ 0.3 s), next to
a bare task that sleeps 300 ms in the same workers (Celery's own I/O efficiency).
"""

from __future__ import annotations

import contextlib
import itertools
import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import Engine, create_engine, text

from bench.env import BenchEnv
from bench.noop_tasks import NOOP, SLEEP
from bench.procs import Broker, Simulator, Worker, producer
from worker.celery_app import MESSAGES_QUEUE, SEND_MESSAGE

INSTANCES = ["inst-a", "inst-b", "inst-c"]
CONTACTS = 500
HOURLY_CAP = 1_000_000
DAILY_CAP = 10_000_000
DRAIN_TIMEOUT_SECONDS = 240.0


@dataclass(frozen=True)
class PoolConfig:
    pool: str
    concurrency: int  # per process
    processes: int = 1  # worker processes started side by side
    stock_fetch: bool = False  # True: kombu's own BRPOP fetch (bench.stock_fetch)

    @property
    def label(self) -> str:
        procs = f"{self.processes} × " if self.processes > 1 else ""
        fetch = ", stock kombu fetch" if self.stock_fetch else ""
        return f"{procs}{self.pool} {self.concurrency}{fetch}"

    @property
    def slots(self) -> int:
        return self.concurrency * self.processes


#: 7.1: same pool and concurrency for bare and pipeline.
OVERHEAD_POOLS = (
    PoolConfig("threads", 8),
    PoolConfig("prefork", 2),
    PoolConfig("threads", 8, processes=2),
    PoolConfig("threads", 8, stock_fetch=True),
)
OVERHEAD_TRIALS = 5
BARE_TASKS = 1000
PIPELINE_TASKS = 400
#: 7.2: simulator latency 300 ms.
IO_LATENCY_MS = 300.0
IO_POOLS = (
    PoolConfig("threads", 8),
    PoolConfig("threads", 16),
    PoolConfig("threads", 32),
    PoolConfig("threads", 8, processes=2),
    PoolConfig("threads", 16, processes=2),
    PoolConfig("prefork", 16),
)
#: Messages per trial = WAVES × slots. A trial's last wave runs with slots idle (more so
#: when two processes split the queue unevenly); with 6 waves that tail cost a bare 300 ms
#: task 0.89–0.93 of the ideal with two processes, with 18 waves 0.94–0.95 (side by side).
IO_WAVES = 18
IO_TRIALS = 2

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


class Workers:
    """The worker processes of one configuration, driven as one."""

    def __init__(self, members: list[Worker]) -> None:
        self.members = members

    @property
    def hostnames(self) -> list[str]:
        return [w.hostname for w in self.members]

    def cpu_seconds(self) -> float:
        return sum(w.cpu_seconds() for w in self.members)

    def rss_mb(self) -> float:
        return sum(w.rss_mb() for w in self.members)

    def stop(self) -> None:
        for worker in self.members:
            worker.stop()


class Bench:
    def __init__(self, env: BenchEnv, engine: Engine, sim: Simulator) -> None:
        self.env = env
        self.engine = engine
        self.sim = sim
        self.app: Celery = producer(env.redis_url)
        self.broker = Broker(env.redis(), MESSAGES_QUEUE)

    @contextlib.contextmanager
    def workers(self, config: PoolConfig) -> Iterator[Workers]:
        env = self.env.worker_env(
            EVOLUTION_API_URL=self.sim.url,
            ZD_BENCH_STOCK_FETCH="1" if config.stock_fetch else "0",
        )
        group = Workers([])
        try:
            for n in range(config.processes):
                name = f"worker-{config.pool}-{config.concurrency}-{n}"
                group.members.append(
                    Worker(
                        env,
                        pool=config.pool,
                        concurrency=config.concurrency,
                        name=name,
                        include=("bench.noop_tasks", "bench.stock_fetch"),
                    )
                )
            yield group
        finally:
            group.stop()

    def publish(self, kind: str, count: int) -> None:
        send = self.app.send_task
        for _ in range(count):
            if kind == "bare":
                send(NOOP, queue=MESSAGES_QUEUE)
            elif kind == "sleep":
                send(SLEEP, args=[IO_LATENCY_MS / 1000], queue=MESSAGES_QUEUE)
            else:
                n = next(_serial)
                c = n % CONTACTS
                send(
                    SEND_MESSAGE,
                    queue=MESSAGES_QUEUE,
                    kwargs={
                        "phone": f"+55 11 9{c // 10_000:04d}-{c % 10_000:04d}",
                        "text": f"bench {n}",
                        "contact_id": f"doctor-{c}",
                    },
                )

    def _control(self, action: Callable[..., Any], workers: Workers) -> None:
        replies = action(MESSAGES_QUEUE, destination=workers.hostnames, reply=True, timeout=10)
        if len(replies or ()) != len(workers.members):
            raise RuntimeError(f"{workers.hostnames}: {action.__name__} answered {replies}")

    def trial(self, workers: Workers, kind: str, count: int) -> Trial:
        """Publish `count` tasks while nobody consumes, then time the drain."""
        self._control(self.app.control.cancel_consumer, workers)
        self.broker.wait_drained(DRAIN_TIMEOUT_SECONDS)
        sent_before = self.sent()
        self.publish(kind, count)
        cpu_before = workers.cpu_seconds()
        self._control(self.app.control.add_consumer, workers)
        started = self.broker.wait_first_taken(count, DRAIN_TIMEOUT_SECONDS)
        ended = self.broker.wait_drained(DRAIN_TIMEOUT_SECONDS)
        trial = Trial(kind, count, ended - started, workers.cpu_seconds() - cpu_before)
        if kind == "pipeline" and (sent := self.sent() - sent_before) != count:
            raise RuntimeError(f"{count} published, {sent} sent; see the worker logs")
        return trial

    def sent(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM messages WHERE state = 'sent'")
                ).scalar_one()
            )


def run(env: BenchEnv, *, overhead: bool = True, io: bool = True) -> dict[str, Any]:
    engine = create_engine(env.database_url)
    env.reset(engine)
    with engine.begin() as conn:
        for name in INSTANCES:
            conn.execute(
                text(
                    "INSERT INTO instances (name, phone, status, hourly_cap, daily_cap, active, "
                    "consecutive_failures) VALUES (:n, '5511900000000', 'connected', :h, :d, "
                    "true, 0)"
                ),
                {"n": name, "h": HOURLY_CAP, "d": DAILY_CAP},
            )
    sim = Simulator(INSTANCES, env.worker_env())
    out: dict[str, Any] = {}
    try:
        bench = Bench(env, engine, sim)
        if overhead:
            out["overhead"] = [_overhead(bench, config) for config in OVERHEAD_POOLS]
        if io:
            sim.set_latency(IO_LATENCY_MS)
            out["io"] = [_io(bench, config) for config in IO_POOLS]
    finally:
        sim.stop()
        engine.dispose()
    return out


def _per_task_ms(trials: list[Trial]) -> float:
    return round(statistics.median(1000 * t.cpu_seconds / t.tasks for t in trials), 2)


def _overhead(bench: Bench, config: PoolConfig) -> dict[str, Any]:
    with bench.workers(config) as workers:
        bench.trial(workers, "bare", 200)  # warm-up: imports, connections, caches
        bench.trial(workers, "pipeline", 100)
        pairs = [
            (
                bench.trial(workers, "bare", BARE_TASKS),
                bench.trial(workers, "pipeline", PIPELINE_TASKS),
            )
            for _ in range(OVERHEAD_TRIALS)
        ]
        rss = workers.rss_mb()
    ratios = [p.per_second / b.per_second for b, p in pairs]
    return {
        "config": config.label,
        "pool": config.pool,
        "concurrency": config.concurrency,
        "bare_per_second": round(statistics.median(b.per_second for b, _ in pairs), 1),
        "pipeline_per_second": round(statistics.median(p.per_second for _, p in pairs), 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "cpu_ms_per_task_bare": _per_task_ms([b for b, _ in pairs]),
        "cpu_ms_per_task_pipeline": _per_task_ms([p for _, p in pairs]),
        "worker_rss_mb": round(rss),
    }


def _io(bench: Bench, config: PoolConfig) -> dict[str, Any]:
    count = config.slots * IO_WAVES
    ideal = config.slots / (IO_LATENCY_MS / 1000)
    with bench.workers(config) as workers:
        bench.trial(workers, "pipeline", config.slots * 2)  # warm-up every pool slot
        pairs = [
            (bench.trial(workers, "sleep", count), bench.trial(workers, "pipeline", count))
            for _ in range(IO_TRIALS)
        ]
        rss = workers.rss_mb()
    rate = statistics.median(p.per_second for _, p in pairs)
    bare = statistics.median(b.per_second for b, _ in pairs)
    return {
        "config": config.label,
        "pool": config.pool,
        "concurrency": config.concurrency,
        "processes": config.processes,
        "latency_ms": IO_LATENCY_MS,
        "messages": count,
        "per_second": round(rate, 1),
        "ideal_per_second": round(ideal, 1),
        "ratio": round(rate / ideal, 3),
        "ratios": [round(p.per_second / ideal, 3) for _, p in pairs],
        "bare_sleep_ratio": round(bare / ideal, 3),
        "pipeline_vs_bare_sleep": round(
            statistics.median(p.per_second / b.per_second for b, p in pairs), 3
        ),
        "cpu_ms_per_message": _per_task_ms([p for _, p in pairs]),
        "worker_rss_mb": round(rss),
    }
