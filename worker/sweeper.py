"""The beat sweep: nothing accepted is lost while PostgreSQL has it.

Rules (also in the README's delivery guarantee):
- `waiting` messages whose `not_before` has come are moved to `queued` and enqueued.
- `sending` messages claimed more than SENDING_STUCK_AFTER_SECONDS ago belong to a worker
  that died between its claim and its record: nobody knows whether the send went out, so
  they wait with their attempt `unknown` and are enqueued; their delivery asks Evolution
  before anything is sent again (worker/verification.py).
- `queued` messages untouched for longer than the longest countdown (plus a margin) lost
  their task (a broker that lost its data, a publish that failed): they are enqueued again.
- When Redis lost its data (the sentinel key is gone), every `queued` message is
  re-driven at once instead of waiting for that margin.
- A worker process silent for WORKER_DEAD_AFTER_SECONDS (worker/heartbeat.py) is dead: its
  `sending` claims are released at once (the same release as stuck ones) and the broker
  messages it fetched but never acknowledged go back on their queue.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis

from config import Settings
from models.sweep_store import SweepStore
from models.views import to_datetime
from worker import keys
from worker.delivery_result import Scheduler
from worker.heartbeat import Heartbeats
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
    #: Dead worker processes found, and the broker messages of theirs restored.
    dead_workers: int = 0
    restored: int = 0


@dataclass(frozen=True, slots=True)
class DeadWorkers:
    """How the sweep finds dead worker processes and restores their broker messages."""

    heartbeats: Heartbeats
    restore: Callable[[Sequence[str]], int]


class Sweeper:
    def __init__(
        self,
        settings: Settings,
        sweeps: SweepStore,
        limiter: Limiter,
        client: redis.Redis[bytes],
        scheduler: Scheduler,
        *,
        dead_workers: DeadWorkers | None = None,
    ) -> None:
        self._dead_workers = dead_workers
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
        dead, released, restored = self._release_dead_workers(at)
        stuck = [*stuck, *released]
        orphan_age = 0.0 if lost else self._s.max_countdown_seconds + ORPHAN_MARGIN_SECONDS
        orphans = self._sweeps.idle_queued(at - timedelta(seconds=orphan_age), BATCH)
        orphans = [i for i in orphans if i not in set(woken) | set(stuck)]
        self._enqueue([*woken, *stuck, *orphans], at)
        report = SweepReport(len(woken), len(stuck), len(orphans), lost, len(dead), restored)
        log_sweep(report)
        return report

    def _release_dead_workers(self, at: datetime) -> tuple[list[str], list[uuid.UUID], int]:
        """Dead worker processes, their `sending` claims released (the stuck-send release,
        whatever their age), and how many broker messages of theirs were restored. A dead
        process is forgotten once nothing of it is left."""
        if self._dead_workers is None:
            return [], [], 0
        heartbeats = self._dead_workers.heartbeats
        dead = heartbeats.dead()
        if not dead:
            return [], [], 0
        released = self._sweeps.release_stuck_sending(at, at, BATCH, claimed_by=dead)
        restored = self._dead_workers.restore(heartbeats.held_by(dead))
        if len(released) < BATCH:
            heartbeats.forget(dead)
        log.warning(
            "worker process(es) %s silent for %.0f s: %d claim(s) released, %d broker "
            "message(s) restored",
            ", ".join(dead),
            heartbeats.dead_after_seconds,
            len(released),
            restored,
        )
        return dead, released, restored

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
    if not (report.stuck or report.orphaned or report.redis_lost_data or report.dead_workers):
        return
    cause = (
        "Redis lost its data (sentinel key gone): every queued message re-driven; "
        if report.redis_lost_data
        else ""
    )
    dead = (
        f"; {report.dead_workers} dead worker process(es), {report.restored} of their broker "
        "messages restored"
        if report.dead_workers
        else ""
    )
    log.warning(
        "sweep: %sre-drove %d message(s) stuck in sending and %d queued message(s) "
        "with no task (%d parked woken as due)%s",
        cause,
        report.stuck,
        report.orphaned,
        report.woken,
        dead,
    )
