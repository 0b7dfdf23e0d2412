"""A bound on the countdown tasks waiting in workers' memory.

A task published with a countdown is held by whichever worker fetched it until it is due
(Celery keeps it unacknowledged in memory, and raises the worker's prefetch for it). The
`worker_eta_task_limit` setting that would bound this does not exist in the Celery this
project locks (5.5). So the scheduling side counts them instead: each countdown task is
booked in a Redis sorted set (message id → due time, unix seconds) and struck off when its
task runs; while MAX_HELD_COUNTDOWNS are booked, a further wait is parked in PostgreSQL
(`waiting` with `not_before`, woken by the sweep) instead of being published. Bookings whose
due time is STALE_AFTER_SECONDS past (their task was lost, or ran without striking them off)
no longer count.
"""

from __future__ import annotations

import uuid
from typing import cast

import redis

from worker import keys

#: Countdown tasks the whole pool may hold at once (each worker holds at most this many).
MAX_HELD_COUNTDOWNS = 1000
#: A booking this long past its due time is taken for lost (seconds).
STALE_AFTER_SECONDS = 120.0


class CountdownBook:
    """The countdown tasks published and not yet run, in Redis (keys.COUNTDOWNS)."""

    def __init__(self, client: redis.Redis, limit: int = MAX_HELD_COUNTDOWNS) -> None:
        self._client = client
        self._limit = limit

    def admit(self, message_id: uuid.UUID, due: float, now: float) -> bool:
        """Book a countdown task for `message_id` due at `due` (unix seconds), unless the
        bound is reached; False means: park it instead. Concurrent callers may overshoot
        the bound by their number, not more."""
        pipe = self._client.pipeline(transaction=True)
        pipe.zremrangebyscore(keys.COUNTDOWNS, "-inf", now - STALE_AFTER_SECONDS)
        pipe.zcard(keys.COUNTDOWNS)
        _, held = pipe.execute()
        if int(held) >= self._limit:
            return False
        self._client.zadd(keys.COUNTDOWNS, {str(message_id): due})
        return True

    def done(self, message_id: uuid.UUID) -> None:
        """The task for `message_id` runs: strike its booking off."""
        self._client.zrem(keys.COUNTDOWNS, str(message_id))

    def held(self) -> int:
        return cast(int, self._client.zcard(keys.COUNTDOWNS))
