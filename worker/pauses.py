"""Pauses as every worker sees them: PostgreSQL holds them, Redis mirrors them.

A pause or resume writes PostgreSQL, then rewrites the mirror (`keys.PAUSES`). Each process
reads the mirror at most once per `cache_seconds` (one HGETALL), so a change reaches every
worker within `cache_seconds` plus one read; a missing mirror (expired, or Redis lost its
data) is rebuilt from PostgreSQL by the first reader. The mirror expires after
MIRROR_TTL_SECONDS, so a reader that rebuilt it from a read older than a concurrent
change leaves it stale for that long at most.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import redis

from models.pause_store import PauseRow, PauseStore
from models.views import to_datetime
from worker import keys
from worker.policy.pauses import PauseEntry, PauseScope, PauseSet

log = logging.getLogger("zapdispatch.pauses")

#: How long a process trusts its last read of the mirror (seconds).
CACHE_SECONDS = 1.0
MIRROR_TTL_SECONDS = 30
_PRESENT = "_"


@dataclass(frozen=True, slots=True)
class Resumed:
    existed: bool
    woken: int


def entries_of(rows: Sequence[PauseRow]) -> list[PauseEntry]:
    return [PauseEntry(PauseScope(r.scope), r.target, r.paused_at.timestamp()) for r in rows]


class PauseBoard:
    """Pause, resume and read the pauses in force (one per process, shared by threads)."""

    def __init__(
        self,
        store: PauseStore,
        client: redis.Redis,
        *,
        cache_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._redis = client
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, PauseSet] | None = None

    def current(self) -> PauseSet:
        """The pauses in force, at most `cache_seconds` old. The same object is returned
        while it is cached, so callers may key their own caches on it."""
        with self._lock:
            cached, now = self._cached, self._monotonic()
            if cached is not None and now - cached[0] < self._cache_seconds:
                return cached[1]
        current = self._read()
        with self._lock:
            if self._cached is not None and self._cached[1] == current:
                current = self._cached[1]  # unchanged: keep the identity callers cache on
            self._cached = (now, current)
        return current

    def fresh(self) -> PauseSet:
        """The pauses in force now, read from the mirror (or PostgreSQL), not the cache."""
        with self._lock:
            self._cached = None
        return self.current()

    def pause(self, scope: PauseScope, target: str, now: float) -> PauseEntry:
        row = self._store.pause(scope.value, target, to_datetime(now))
        self._publish()
        log.warning("paused %s %s", scope.value, target or "(all sending)")
        return PauseEntry(scope, target, row.paused_at.timestamp())

    def resume(self, scope: PauseScope, target: str, now: float) -> Resumed:
        existed, woken = self._store.resume(scope.value, target, to_datetime(now))
        self._publish()
        log.warning("resumed %s %s: %d paused messages due", scope.value, target or "(all)", woken)
        return Resumed(existed, woken)

    def park(
        self, message_id: uuid.UUID, campaign: str | None, until: datetime, now: float
    ) -> bool:
        """Park a message a pause holds, if that pause is still in force in PostgreSQL
        (models/pause_store.py `park`); False: it is not, deliver the message."""
        parked = self._store.park(message_id, campaign, until, to_datetime(now))
        if not parked:
            self.fresh()  # this process's view was stale: read the pauses again
        return parked

    def _read(self) -> PauseSet:
        mirror = cast(dict[bytes, bytes], self._redis.hgetall(keys.PAUSES))
        if not mirror:
            return PauseSet.of(self._publish())
        return PauseSet.of(_decode(mirror))

    def _publish(self) -> list[PauseEntry]:
        """Rewrite the mirror from PostgreSQL; returns what it wrote. Drops this process's
        cache, so the process that made a change sees it at once."""
        entries = entries_of(self._store.all())
        fields: dict[str | bytes, str] = {_PRESENT: "1"}
        fields.update({f"{e.scope.value}:{e.target}": repr(e.since) for e in entries})
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(keys.PAUSES)
        pipe.hset(keys.PAUSES, mapping=fields)
        pipe.expire(keys.PAUSES, MIRROR_TTL_SECONDS)
        pipe.execute()
        with self._lock:
            self._cached = None
        return entries


def _decode(mirror: dict[bytes, bytes]) -> list[PauseEntry]:
    found = []
    for raw_field, raw_since in mirror.items():
        name = raw_field.decode()
        if name == _PRESENT:
            continue
        scope, _, target = name.partition(":")
        found.append(PauseEntry(PauseScope(scope), target, float(raw_since)))
    return found
