"""Counters for in-process benchmarks: Redis round trips, SQL statements, limiter calls.

Round trips are counted on the client side, per socket write (`send_packed_command`): a
command is one, a pipeline is one, an EVALSHA that needs a SCRIPT LOAD is three. Other
clients of the shared Redis server do not interfere (unlike `INFO commandstats`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy import Engine, event

from worker.limiter import Candidate, NoCapacity, Reservation


class Tally:
    """A thread-safe counter, with a per-thread view for per-call attribution."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self._local = threading.local()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.total += n
        self._local.count = getattr(self._local, "count", 0) + n

    def mine(self) -> int:
        """What the calling thread has added so far."""
        return int(getattr(self._local, "count", 0))


REDIS_ROUND_TRIPS = Tally()


class CountingConnection(redis.Connection):
    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        REDIS_ROUND_TRIPS.add()
        super().send_packed_command(command, check_health)


def count_redis(client: redis.Redis[Any]) -> None:
    """Make `client` count its round trips; call before it opens a connection."""
    pool = client.connection_pool
    pool.disconnect()
    pool.connection_class = CountingConnection


class SqlCounter:
    """SQL statements and pool checkouts (one per transaction).

    On `sessions` (SQLAlchemy connections) statements are counted by
    `before_cursor_execute`. The message store's hot statements run on psycopg's cursor over
    the `statements` engine's pool (models/statements.py), which SQLAlchemy's statement
    events do not see: each is one checkout there, counted as one statement and one
    transaction. On an engine with `pool_pre_ping`, each checkout also costs one ping
    round trip to PostgreSQL that the statement counter does not see.
    """

    def __init__(self, sessions: Engine, statements: Engine) -> None:
        self.statements = Tally()
        self.checkouts = Tally()
        event.listen(sessions, "before_cursor_execute", self._on_statement)
        event.listen(sessions.pool, "checkout", self._on_checkout)
        event.listen(statements.pool, "checkout", self._on_hot_statement)

    def _on_statement(self, *_: Any) -> None:
        self.statements.add()

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts.add()

    def _on_hot_statement(self, *_: Any) -> None:
        self.statements.add()
        self.checkouts.add()


class CountingLimiter:
    """Wraps a limiter: counts reserve calls (routing decisions) and stamps when each ends.

    Everything else is delegated untouched (release, usage, now, book_wake, ...).
    """

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.decisions = Tally()
        self._local = threading.local()

    def reserve(
        self, candidates: Sequence[Candidate], *, phone: str, strict: int = 0
    ) -> Reservation | NoCapacity:
        try:
            return self._inner.reserve(candidates, phone=phone, strict=strict)  # type: ignore[no-any-return]
        finally:
            self.decisions.add()
            self._local.reserved_at = time.perf_counter()
            self._local.candidates = len(candidates)

    def last_reserve_end(self) -> float | None:
        """perf_counter() when this thread's last reserve returned."""
        return getattr(self._local, "reserved_at", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
