"""Before/after figures of the hot-path edits made from the benchmarks, side by side in one run.

    python -m bench.compare                      # ~6 min; writes bench/results/compare.json
    python -m bench.compare --only hub_wakeup    # one comparison

Each edit is switched off by the bench alone (no product flag), and the variants alternate
batch by batch so that the machine's load hits them alike:

- routing at 1,000 instances (in-process, one thread): the old per-message ORM read of
  every instance, then a Core read per message, then the 1 s snapshot, then the limiter's
  bounded candidate sample, then the reuse of the Redis clock reading;
- one reserve over 1,000 candidates: the old reserve.lua (one argument per cap) against the
  packed caps (sampling off for both);
- `--pool=threads` workers with and without the hub wake-up (`bench.no_hub_wakeup`), both
  running, each consuming in turn.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, select, text

from bench import env as bench_env
from bench import scale
from bench.env import ROOT, BenchEnv
from bench.procs import Simulator, Worker
from bench.report import RESULTS
from bench.throughput import INSTANCES, Bench, Workers
from models.instance_store import InstanceStore, instance_view
from models.tables import Instance
from models.views import InstanceView
from tests.support.stack import Stack, build_stack
from worker.limiter import Candidate, RedisLimiter, redis_backend
from worker.resources import ROUTING_SNAPSHOT_SECONDS

#: The commit before the edits (for the old reserve.lua).
BEFORE = "db4102f"
BATCH = 40
REPS = 5


class OrmInstanceStore(InstanceStore):
    """`all()` as it was: ORM objects, then views; read for every message."""

    def all(self) -> list[InstanceView]:
        with self._sessions() as session:
            return [
                instance_view(r) for r in session.scalars(select(Instance).order_by(Instance.name))
            ]


@contextmanager
def limiter_knobs(stack: Stack, sample: int, clock_reuse: float) -> Iterator[None]:
    """The stack reserves through a limiter with these knobs, then with the defaults."""
    stack.use_limiter(sample_size=sample, clock_reuse_seconds=clock_reuse)
    try:
        yield
    finally:
        stack.use_limiter()


def routing(env: BenchEnv, size: int = 1000) -> dict[str, Any]:
    """Cumulative variants of the routing path; p50 of the decision and of the delivery."""
    stack = build_stack(env.settings(), clock=time.time, policies=False)
    try:
        env.reset(stack.res.engine)
        scale.CONTACTS = 50_000
        scale._insert_contacts(stack)
        scale._set_instances(stack, size)
        variants: dict[str, tuple[Callable[[], InstanceStore], int, float]] = {
            "before": (lambda: OrmInstanceStore(stack.res.sessions), 10**9, 0.0),
            "+ Core read": (lambda: InstanceStore(stack.res.sessions), 10**9, 0.0),
            "+ 1 s snapshot": (
                lambda: InstanceStore(
                    stack.res.sessions, snapshot_seconds=ROUTING_SNAPSHOT_SECONDS
                ),
                10**9,
                0.0,
            ),
            "+ sampled candidates": (
                lambda: InstanceStore(
                    stack.res.sessions, snapshot_seconds=ROUTING_SNAPSHOT_SECONDS
                ),
                redis_backend.SAMPLE_SIZE,
                0.0,
            ),
            "+ clock reuse (after)": (
                lambda: InstanceStore(
                    stack.res.sessions, snapshot_seconds=ROUTING_SNAPSHOT_SECONDS
                ),
                redis_backend.SAMPLE_SIZE,
                redis_backend.CLOCK_REUSE_SECONDS,
            ),
        }
        rows: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
        rng = scale.random.Random(3)
        for rep in range(REPS + 1):
            for name, (store, sample, reuse) in variants.items():
                stack.use_instances(store())
                ids = scale._prepare_messages(stack, size, BATCH, rng)
                with limiter_knobs(stack, sample, reuse):
                    measured = [scale._measure(stack, i) for i in ids]
                if rep:  # the first round warms every variant up
                    rows[name].extend(measured)
        return {
            name: {
                "decision_ms_p50": round(statistics.median(r["decision_ms"] for r in got), 3),
                "deliver_ms_p50": round(statistics.median(r["deliver_ms"] for r in got), 3),
                "redis_round_trips": round(statistics.mean(r["redis"] for r in got), 2),
                "sql_statements": round(statistics.mean(r["sql"] for r in got), 2),
            }
            for name, got in rows.items()
        } | {"instances": size}
    finally:
        stack.close()


class UnpackedLimiter(RedisLimiter):
    """The limiter with the old reserve.lua: one argument per cap."""

    def __init__(self, *args: Any, script: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reserve_script = self._client.register_script(script)

    def _call(self, candidates: Any, phone_key: str, head: list[str]) -> list[Any]:
        keys = [redis_backend.keys.TEST_CLOCK, phone_key, *self._candidate_keys(candidates)]
        caps = [str(cap) for c in candidates for cap in (c.hourly_cap, c.daily_cap)]
        table = self._current_table()
        args = [head[0], self._clock_flag(), *head[1:], *table.as_args(), *caps]
        return [redis_backend._text(p) for p in self._run(keys, args)]


def packed_caps(env: BenchEnv, size: int = 1000) -> dict[str, Any]:
    old = subprocess.run(
        ["git", "show", f"{BEFORE}:worker/limiter/reserve.lua"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    if "ARGV[caps_base + 2 * i - 1]" not in old:
        return {"missing": f"the old reserve.lua is not at {BEFORE}"}
    settings = env.settings()
    with env.redis() as client:
        client.flushdb()
        args = (client, settings.zone, redis_backend.SpacingPolicy())
        unsampled = {"sample_size": 10**9}
        limiters = {
            "one argument per cap (before)": UnpackedLimiter(*args, script=old, **unsampled),
            "packed caps (after)": RedisLimiter(*args, **unsampled),
        }
        candidates = [Candidate(f"inst-{i:04d}", 10**6, 10**7) for i in range(size)]
        times: dict[str, list[float]] = {name: [] for name in limiters}
        for rep in range(REPS * 4 + 1):
            for name, limiter in limiters.items():
                began = time.perf_counter()
                for _ in range(10):
                    limiter.reserve(candidates, phone="5511900000000")
                if rep:
                    times[name].append((time.perf_counter() - began) * 100)
        client.flushdb()
    return {
        name: {"reserve_ms_p50": round(statistics.median(t), 3)} for name, t in times.items()
    } | {"candidates": size}


@dataclass(frozen=True)
class WorkerSpec:
    pool: str
    concurrency: int
    include: tuple[str, ...] = ("bench.noop_tasks",)


def side_by_side(
    env: BenchEnv, specs: dict[str, WorkerSpec], runs: tuple[tuple[float, int], ...]
) -> dict[str, Any]:
    """Pipeline msg/s of worker variants that all run at once and consume in turns."""
    engine = create_engine(env.database_url)
    env.reset(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO instances (name, phone, status, hourly_cap, daily_cap, active, "
                "consecutive_failures) SELECT unnest(CAST(:names AS text[])), "
                "'5511900000000', 'connected', 1000000, 10000000, true, 0"
            ),
            {"names": INSTANCES},
        )
    sim = Simulator(INSTANCES, env.worker_env())
    out: dict[str, Any] = {}
    groups: dict[str, Workers] = {}
    try:
        bench = Bench(env, engine, sim)
        for n, (name, spec) in enumerate(specs.items()):
            worker_env = env.worker_env(EVOLUTION_API_URL=sim.url)
            groups[name] = Workers(
                [
                    Worker(
                        worker_env,
                        pool=spec.pool,
                        concurrency=spec.concurrency,
                        name=f"compare-{n}",
                        include=spec.include,
                    )
                ]
            )
            bench._control(bench.app.control.cancel_consumer, groups[name])
        for latency, count in runs:
            sim.set_latency(latency)
            rates: dict[str, list[float]] = {name: [] for name in groups}
            for rep in range(4):
                for name, workers in groups.items():
                    trial = bench.trial(workers, "pipeline", count if rep else count // 4)
                    bench._control(bench.app.control.cancel_consumer, workers)
                    if rep:  # the first round warms every variant up
                        rates[name].append(trial.per_second)
            out[f"latency_{latency:.0f}_ms"] = {
                name: round(statistics.median(r), 1) for name, r in rates.items()
            }
    finally:
        for workers in groups.values():
            workers.stop()
        sim.stop()
        engine.dispose()
    return out


def hub_wakeup(env: BenchEnv) -> dict[str, Any]:
    """A threads worker with and without `worker.threads_pool`'s wake-up (the edit)."""
    specs = {
        "without wake-up (before)": WorkerSpec(
            "threads", 8, include=("bench.noop_tasks", "bench.no_hub_wakeup")
        ),
        "with wake-up (after)": WorkerSpec("threads", 8),
    }
    return side_by_side(env, specs, ((0.0, 160), (300.0, 96))) | {"pool": "threads 8"}


COMPARISONS: dict[str, Callable[[BenchEnv], dict[str, Any]]] = {
    "routing_1000": routing,
    "routing_10": lambda env: routing(env, 10),
    "packed_caps": packed_caps,
    "hub_wakeup": hub_wakeup,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("--only", default=",".join(COMPARISONS))
    chosen = [n.strip() for n in parser.parse_args().only.split(",") if n.strip()]
    env = bench_env.open_env()
    results: dict[str, Any] = {}
    try:
        for name in chosen:
            print(f"[compare] {name} ...", flush=True)
            results[name] = COMPARISONS[name](env)
            print(json.dumps(results[name], indent=1), flush=True)
    finally:
        bench_env.close_env(env)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
