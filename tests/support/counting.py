"""Counters for benchmarks and tests, kept out of the production classes: Redis round trips,
the limiter's script calls, SQL statements, routing decisions.

Redis round trips are counted on the client side, per socket write (`send_packed_command`):
a command is one, a pipeline is one, an EVALSHA that needs a SCRIPT LOAD is three. Other
clients of the shared Redis server do not interfere (unlike `INFO commandstats`).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import redis
from sqlalchemy import Engine, event

from worker.limiter import Candidate, NoCapacity, Reservation
from worker.limiter.redis_backend import read_script


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


def count_redis(client: redis.Redis) -> None:
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


#: The limiter's Lua scripts by the SHA1 that EVALSHA names them with.
LIMITER_SCRIPTS = {
    hashlib.sha1(read_script(name).encode()).hexdigest(): name
    for name in ("reserve.lua", "release.lua", "rebuild.lua")
}


class ScriptCountingRedis(redis.Redis):
    """A Redis client that counts the limiter's script calls; give it to a `RedisLimiter`
    (its scripts are registered on, and run through, the client they are given).

    Build it on another client's pool (`ScriptCountingRedis(connection_pool=c.connection_pool)`)
    to count on that client's connections. Thread-safe.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.script_calls: Counter[str] = Counter()
        self.stale_replies = 0
        self._count_lock = threading.Lock()

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        reply = super().evalsha(sha, numkeys, *keys_and_args)
        name = LIMITER_SCRIPTS.get(sha, sha)
        with self._count_lock:
            self.script_calls[name] += 1
            if name == "reserve.lua" and reply and reply[0] in (b"stale", "stale"):
                self.stale_replies += 1
        return reply

    @property
    def round_trips(self) -> int:
        """reserve.lua and release.lua calls (one per reserve, usage or release in steady
        state; a reserve that samples candidates first may take two)."""
        return self.script_calls["reserve.lua"] + self.script_calls["release.lua"]

    @property
    def table_refreshes(self) -> int:
        """reserve.lua calls answered "stale": the limiter rebuilt its UTC-offset table and
        called again (its clock left the table's span, e.g. the test clock jumped ahead)."""
        return self.stale_replies

    @property
    def rebuilds(self) -> int:
        """Times the limiter's counters were rebuilt from PostgreSQL (rebuild.lua calls)."""
        return self.script_calls["rebuild.lua"]
