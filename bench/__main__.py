"""`python -m bench` (or `make bench`): run every benchmark, write bench/results/latest.*.

    python -m bench                         # everything, ~6-9 min on 2 cores
    python -m bench --only saturation,scale # a subset: saturation, throughput, scale, health,
                                            # webhooks, recovery
    python -m bench --quick                 # tiny sizes: checks the bench itself, ~2 min

Needs the README's PostgreSQL and Redis on 127.0.0.1. Creates (drops first) the database
`zd_bench` and claims one Redis database (14 if free), flushed by the bench. Not a test:
nothing here asserts; targets are shown next to the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import celery
import redis
import sqlalchemy

from bench import env as bench_env
from bench import health, recovery, report, saturation, scale, throughput, webhooks
from bench.env import ROOT, BenchEnv

SECTIONS: dict[str, Callable[[BenchEnv], dict[str, Any]]] = {
    "saturation": saturation.run,
    "scale": scale.run,
    "throughput": throughput.run,
    "health": health.run,
    "webhooks": webhooks.run,
    "recovery": recovery.run,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, to check the bench itself (figures mean little)",
    )
    args = parser.parse_args()
    if args.quick:
        _shrink()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    started, load_before, cpu_before = time.perf_counter(), _load(), _cpu_jiffies()
    results: dict[str, Any] = {"meta": {}}
    env = bench_env.open_env()
    try:
        for name in chosen:
            results[name] = _section(name, env)
    finally:
        bench_env.close_env(env)
    results["meta"] = _meta(started, load_before) | {
        "steal_percent": _steal_percent(cpu_before, _cpu_jiffies())
    }
    json_path, md_path = report.write(results)
    print(md_path.read_text())
    print(f"wrote {json_path.relative_to(ROOT)} and {md_path.relative_to(ROOT)}")


def _shrink() -> None:
    saturation.MESSAGES, saturation.CONTACTS, saturation.HOURLY_CAP = 300, 150, 30
    scale.CONTACTS, scale.ROUNDS, scale.PER_ROUND = 20_000, 1, 30
    throughput.OVERHEAD_POOLS = throughput.OVERHEAD_POOLS[:1]
    throughput.OVERHEAD_TRIALS, throughput.BARE_TASKS, throughput.PIPELINE_TASKS = 1, 200, 50
    throughput.IO_POOLS = (throughput.PoolConfig("threads", 8),)
    throughput.IO_TRIALS = 1
    health.SIZES = (20, 40)
    recovery.RUNS, recovery.MESSAGES, recovery.KILL_AT_SENT = 1, 200, (40, 140)


def _section(name: str, env: BenchEnv) -> dict[str, Any]:
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    began, cpu_before = time.perf_counter(), _cpu_jiffies()
    try:
        out = SECTIONS[name](env)
    except Exception as exc:  # a failed section must not lose the others' figures
        traceback.print_exc()
        out = {"error": f"{type(exc).__name__}: {exc}"}
    out["seconds"] = round(time.perf_counter() - began, 1)
    out["steal_percent"] = _steal_percent(cpu_before, _cpu_jiffies())
    print(f"[bench] {name} done in {out['seconds']:.0f} s", file=sys.stderr, flush=True)
    return out


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _cpu_jiffies() -> tuple[int, int]:
    """(steal, all) CPU time of the machine since boot, in clock ticks (/proc/stat; zeros
    where there is none). Steal: time a virtual CPU was ready but its host ran something
    else, the noise that ratios measured side by side are meant to survive."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except (OSError, ValueError):
        return (0, 0)
    return (fields[7], sum(fields)) if len(fields) == 8 else (0, 0)


def _steal_percent(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Share of all CPU time stolen by the host between two readings, percent."""
    total = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / total, 1) if total > 0 else None


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def _meta(started: float, load_before: str) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        # The previous run's own result files do not make the checkout dirty.
        "dirty": bool(
            _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results")
        ),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": _load(),
        "seconds": round(time.perf_counter() - started, 1),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "redis_py": redis.__version__,
        "sqlalchemy": sqlalchemy.__version__,
    }


if __name__ == "__main__":
    main()
