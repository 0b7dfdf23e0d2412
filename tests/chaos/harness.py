"""What every chaos scenario shares: fast settings, processes, the producer, the tally."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.chaos.results import Row
from tests.chaos.servers import PrivatePostgres, PrivateRedis
from tests.support.processes import ServiceProcess, producer, service_env, start_worker

SEND = "zapdispatch.send_message"
SWEEP = "zapdispatch.sweep"
TERMINAL = ("sent", "failed", "expired")

#: Short timers so that a scenario recovers in seconds, not minutes (env names of Settings).
FAST_SETTINGS = {
    "SWEEP_INTERVAL_SECONDS": "1",
    "SENDING_STUCK_AFTER_SECONDS": "4",
    "MAX_COUNTDOWN_SECONDS": "2",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "4",
    "RETRY_BACKOFF_SECONDS": "0.3",
    "RETRY_BACKOFF_MAX_SECONDS": "2",
    "OFFLINE_BACKOFF_SECONDS": "0.5",
    "OFFLINE_BACKOFF_MAX_SECONDS": "2",
    "REQUEUE_JITTER_SECONDS": "0.2",
    "EVOLUTION_TIMEOUT_SECONDS": "1.5",
    "EVOLUTION_CONNECT_TIMEOUT_SECONDS": "1",
    "HEALTH_CHECK_INTERVAL_SECONDS": "3600",
    "CIRCUIT_FAILURE_THRESHOLD": "3",
    "CIRCUIT_COOLDOWN_SECONDS": "300",
    "UNKNOWN_OUTCOME_GRACE_SECONDS": "0.5",
}


def digits(i: int) -> str:
    """`phone(i)` as the worker sends it to Evolution (E.164 digits)."""
    return f"55119{i:04d}{i:04d}"


@dataclass
class Chaos:
    """One scenario's private services and the handles a test drives them with."""

    pg: PrivatePostgres
    database_url: str
    redis: PrivateRedis
    engine: Engine
    start_celery: Callable[..., ServiceProcess]
    workdir: Path

    # -- set-up -------------------------------------------------------------------------
    def instances(self) -> InstanceStore:
        return InstanceStore(make_session_factory(self.engine))

    def add_instances(
        self, names: Iterable[str], hourly: int = 10_000, daily: int = 100_000
    ) -> None:
        store = self.instances()
        for name in names:
            store.add(name, "5511900000000", hourly, daily, status=InstanceStatus.CONNECTED)

    def env(self, sim_url: str, **overrides: str) -> dict[str, str]:
        return service_env(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis.url,
            EVOLUTION_API_URL=sim_url,
            **{**FAST_SETTINGS, **overrides},
        )

    # -- processes ----------------------------------------------------------------------
    def worker(
        self, env: dict[str, str], *, concurrency: int = 4, name: str = "worker"
    ) -> ServiceProcess:
        return start_worker(self.start_celery, env, concurrency=concurrency, name=name)

    def beat(self, env: dict[str, str]) -> ServiceProcess:
        schedule = self.workdir / f"beat-{time.monotonic_ns()}.db"
        process = self.start_celery(
            ["beat", "--loglevel=INFO", f"--schedule={schedule}"], env, "beat"
        )
        process.wait_for("beat: Starting")
        return process

    def producer(self) -> Celery:
        return producer(self.redis.url)

    # -- reads --------------------------------------------------------------------------
    def states(self) -> dict[str, int]:
        return {
            str(k): int(v)
            for k, v in self.query("SELECT state, count(*) FROM messages GROUP BY state")
        }

    def count(self, state: str) -> int:
        return int(self.query("SELECT count(*) FROM messages WHERE state = :s", s=state)[0][0])

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def rows(self) -> list[dict[str, Any]]:
        return [
            dict(r._mapping)
            for r in self.query(
                "SELECT id, phone, text, state, instance, attempts, requeues, last_error, "
                "provider_message_id, created_at, claimed_at, sent_at, updated_at FROM messages"
            )
        ]


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.1
) -> float:
    """Poll until `predicate()`; returns the seconds it took. Raises AssertionError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:  # a service the predicate reads may be down on purpose
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def duplicates(received: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """(number, text) → copies received, for every pair the simulator got more than once."""
    copies = Counter((m["number"], m["text"]) for m in received)
    return {key: n for key, n in copies.items() if n > 1}


def tally(
    fault: str,
    rows: list[dict[str, Any]],
    received: list[dict[str, Any]],
    expected_texts: Iterable[str] | None = None,
    notes: str = "",
    **extra: Any,
) -> Row:
    """The Jepsen-style row: compare what PostgreSQL recorded with what Evolution received.

    lost = every expected message that has no row, is not terminal, or is `sent` without
    the simulator having received it.
    """
    by_text = {r["text"]: r for r in rows}
    seen = {(m["number"], m["text"]) for m in received}
    states = Counter(r["state"] for r in rows)
    lost_ids = [
        r["text"]
        for r in rows
        if r["state"] not in TERMINAL
        or (r["state"] == "sent" and (r["phone"], r["text"]) not in seen)
    ]
    missing = [t for t in (expected_texts or ()) if t not in by_text]
    dups = duplicates(received)
    unrecorded = [m for m in received if (by_text.get(m["text"]) or {}).get("state") != "sent"]
    extra = {
        **extra,
        "states": dict(states),
        "missing_rows": len(missing),
        "received": len(received),
        "received_but_not_sent_in_db": len(unrecorded),
        "lost_examples": (lost_ids + missing)[:5],
        "not_sent_examples": [
            {
                k: str((by_text.get(m["text"]) or {}).get(k))[:160]
                for k in ("text", "state", "attempts", "requeues", "last_error")
            }
            for m in unrecorded[:5]
        ],
    }
    return Row(
        fault=fault,
        accepted=len(rows),
        sent=states.get("sent", 0),
        lost=len(lost_ids) + len(missing),
        duplicated=sum(n - 1 for n in dups.values()),
        expired=states.get("expired", 0),
        failed=states.get("failed", 0),
        notes=notes,
        extra=extra,
    )
