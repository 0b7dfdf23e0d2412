"""`GET /dashboard/health`: instances online, circuits closed, Redis and PostgreSQL.

Each check runs on its own, records its latency in milliseconds, and never raises: a
failing dependency is a failed check (`degraded`, HTTP 503), not an error page.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from worker.api.deps import ApiDeps
from worker.stats import Overview

ERROR_DETAIL_CHARS = 200


@dataclass(frozen=True, slots=True)
class Check:
    """One check: passed or not, a short human detail, and how long it took (ms)."""

    name: str
    ok: bool
    detail: str
    latency_ms: float


def timed(name: str, probe: Callable[[], tuple[bool, str]]) -> Check:
    """Run `probe`; an exception is a failed check whose detail names it."""
    started = time.perf_counter()
    try:
        ok, detail = probe()
    except Exception as exc:  # any failure of a dependency is a failed check
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:ERROR_DETAIL_CHARS]
    return Check(name, ok, detail, round((time.perf_counter() - started) * 1000, 2))


def instances_probe(overview: Overview) -> tuple[bool, str]:
    """At least one instance connected."""
    online = overview.summary.online
    return online > 0, f"{online}/{overview.summary.total_instances} online"


def circuits_probe(overview: Overview) -> tuple[bool, str]:
    """Every active instance's breaker closed."""
    active = [row for row in overview.rows if row.view.active]
    closed = sum(1 for row in active if row.circuit.value == "closed")
    return closed == len(active), f"{closed}/{len(active)} closed"


def database_probe(deps: ApiDeps) -> tuple[bool, str]:
    """PostgreSQL answers `SELECT 1` (raises otherwise)."""
    deps.activity.ping()
    return True, "SELECT 1"


def health_status(checks: Sequence[Check]) -> str:
    """`healthy` when every check passed, else `degraded`."""
    return "healthy" if all(check.ok for check in checks) else "degraded"


def run_checks(deps: ApiDeps) -> list[Check]:
    """Redis, PostgreSQL, then the instance checks (which need both)."""
    redis_check = timed("redis", lambda: (bool(deps.redis.ping()), "PING"))
    db_check = timed("database", lambda: database_probe(deps))
    holder: list[Overview] = []

    def overview_probe() -> tuple[bool, str]:
        holder.append(deps.stats.overview())
        return instances_probe(holder[0])

    instances = timed("instances", overview_probe)
    circuits = (
        timed("circuits", lambda: circuits_probe(holder[0]))
        if holder
        else Check("circuits", False, "unknown: instances unreadable", 0.0)
    )
    return [instances, circuits, redis_check, db_check]


def health_json(checks: Sequence[Check]) -> dict[str, Any]:
    """The shape (`status`, `checks` as booleans, `details`) plus `latency_ms`."""
    return {
        "status": health_status(checks),
        "checks": {check.name: check.ok for check in checks},
        "details": {check.name: check.detail for check in checks},
        "latency_ms": {check.name: check.latency_ms for check in checks},
    }
