"""The beat sweep: nothing accepted is lost while PostgreSQL has it.

Rules (also in the README's delivery guarantee):
- `waiting` messages whose `not_before` has come are moved to `queued` and enqueued.
- `sending` messages claimed more than SENDING_STUCK_AFTER_SECONDS ago belong to a worker
  that died between its claim and its record: they go back to `queued` and are enqueued
  (the one place a duplicate send can come from).
- `queued` messages untouched for longer than the longest countdown (plus a margin) lost
  their task (a broker that lost its data, a publish that failed): they are enqueued again.
- When Redis lost its data (the sentinel key is gone), every `queued` message is
  re-driven at once instead of waiting for that margin.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from config import Settings
from models.sweep_store import SweepStore
from models.views import to_datetime
from worker import keys
from worker.delivery import Scheduler
from worker.limiter import Limiter

log = logging.getLogger("zapdispatch.sweep")

BATCH = 1000
#: Beyond the longest countdown, how long a `queued` message may sit before it counts lost.
ORPHAN_MARGIN_SECONDS = 120.0


@dataclass(frozen=True, slots=True)
class SweepReport:
    woken: int
    stuck: int
    orphaned: int
    redis_lost_data: bool


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sweeps: SweepStore,
        limiter: Limiter,
        client: redis.Redis[bytes],
        scheduler: Scheduler,
    ) -> None:
        self._s = settings
        self._sweeps = sweeps
        self._limiter = limiter
        self._redis = client
        self._scheduler = scheduler

    def run(self) -> SweepReport:
        """One sweep; holds a Redis lock so overlapping sweeps do not double-enqueue."""
        lock = self._redis.lock(keys.lock("sweep"), timeout=300, blocking=False)
        if not lock.acquire(blocking=False):
            return SweepReport(0, 0, 0, redis_lost_data=False)
        try:
            return self._sweep(self._limiter.now())
        finally:
            lock.release()

    def _sweep(self, now: float) -> SweepReport:
        at = to_datetime(now)
        lost = self._redis.set(keys.SENTINEL, "1", nx=True) is True
        woken = self._sweeps.wake_due(at, BATCH)
        stuck_before = at - timedelta(seconds=self._s.sending_stuck_after_seconds)
        stuck = self._sweeps.release_stuck_sending(stuck_before, at, BATCH)
        orphan_age = 0.0 if lost else self._s.max_countdown_seconds + ORPHAN_MARGIN_SECONDS
        orphans = self._sweeps.idle_queued(at - timedelta(seconds=orphan_age), BATCH)
        orphans = [i for i in orphans if i not in set(woken) | set(stuck)]
        self._enqueue([*woken, *stuck, *orphans], at)
        report = SweepReport(len(woken), len(stuck), len(orphans), lost)
        log_sweep(report)
        return report

    def _enqueue(self, ids: Sequence[uuid.UUID], at: datetime) -> None:
        if not ids:
            return
        self._sweeps.touch(ids, at)
        for message_id in ids:
            self._scheduler.schedule(message_id, 0.0)


def log_sweep(report: SweepReport) -> None:
    """Say what a sweep did in words: a Redis without the sentinel key and no message to
    re-drive is a new (or flushed) Redis with nothing to recover, not a loss."""
    if report.redis_lost_data and not (report.stuck or report.orphaned):
        log.info("sweep: new Redis (no sentinel key yet), nothing to recover")
        return
    if not (report.stuck or report.orphaned or report.redis_lost_data):
        return
    cause = (
        "Redis lost its data (sentinel key gone): every queued message re-driven; "
        if report.redis_lost_data
        else ""
    )
    log.warning(
        "sweep: %sre-drove %d message(s) stuck in sending and %d queued message(s) "
        "with no task (%d parked woken as due)",
        cause,
        report.stuck,
        report.orphaned,
        report.woken,
    )
