"""The per-minute health check (`zapdispatch.health_check`), as a plain class.

One run: take the Redis lock (at most one run at a time across processes), poll every
instance's state from Evolution (`poll.py`), record each status change on the instance and
in `instance_events`, migrate contacts off newly banned numbers, read the limiter's loads,
then open / remind / resolve alerts (`rules.py`) and send what is owed (`alert_manager.py`).

Decisions: `banned` is sticky (only an operator un-bans; the health check never turns a
banned instance back to connected); status is recorded for inactive instances too, but only
active instances raise alerts. A channel failure never fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx
import redis
from redis.exceptions import LockError
from sqlalchemy.exc import SQLAlchemyError

from config import Settings
from models.alert_store import AlertStore
from models.chart_store import ChartStore
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from models.receipt_store import DeliveryCounts, ReceiptStore
from models.views import InstanceView, StatusChange, to_datetime
from worker import keys
from worker.breaker import BreakerPolicy, is_online
from worker.clock import Clock, RedisClock
from worker.evolution import AsyncEvolutionClient
from worker.limiter import Candidate, Limiter
from worker.monitor.alert_manager import AlertManager, Applied, Notified
from worker.monitor.licence import licence_required_since, note_licence_gate
from worker.monitor.notifiers import build_notifiers
from worker.monitor.poll import PollMode, PollPolicy, PollResult, poll_states
from worker.monitor.rules import (
    MonitorPolicy,
    Snapshot,
    Transition,
    conditions,
    plan,
)
from worker.monitor.states import DEFAULT_BAN_CODES, observe
from worker.monitor.status import record_observation
from worker.policy.pauses import PauseSet
from worker.policy.warmup import warmed
from worker.resources import Resources
from worker.stats import DeliverySource

log = logging.getLogger("zapdispatch.health")

#: The lock outlives any sane run (seconds); a crashed run frees it after this.
LOCK_TTL_SECONDS = 300
#: Longest a health probe may wait for one answer (seconds).
MAX_PROBE_TIMEOUT_SECONDS = 10.0
LAST_RUN_KEY = keys.alert_throttle("health:last_run")
RUNS_KEY = keys.alert_throttle("health:runs")

EvolutionFactory = Callable[[], AsyncEvolutionClient]


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What one run did. `ran` is False when another run held the lock."""

    ran: bool
    mode: PollMode | None = None
    checked: int = 0
    online: int = 0
    changes: tuple[StatusChange, ...] = ()
    migrated: Mapping[str, int] = field(default_factory=dict)
    alerts: Applied = field(default_factory=Applied)
    notifications: Notified = field(default_factory=Notified)
    poll_seconds: float = 0.0


def policy_from(settings: Settings) -> MonitorPolicy:
    return MonitorPolicy(
        capacity_alert_pct=settings.capacity_alert_pct,
        breaker=BreakerPolicy.from_settings(settings),
        repeat_seconds=settings.alert_repeat_minutes * 60.0,
        undelivered_min_sends=settings.undelivered_min_sends,
    )


@dataclass(frozen=True, slots=True)
class DeliveryWindow:
    """Sends the "not delivering" rule reads: sent in the last `window_seconds` but not in
    the last `grace_seconds` (too fresh to expect a receipt)."""

    window_seconds: float = 1800.0
    grace_seconds: float = 120.0


def delivery_window_from(settings: Settings) -> DeliveryWindow:
    return DeliveryWindow(
        settings.undelivered_window_minutes * 60.0, settings.undelivered_grace_minutes * 60.0
    )


def poll_policy_from(settings: Settings) -> PollPolicy:
    return PollPolicy(
        timeout_seconds=min(settings.evolution_timeout_seconds, MAX_PROBE_TIMEOUT_SECONDS)
    )


class PauseSource(Protocol):
    """The pauses in force, read now (worker/pauses.py `PauseBoard` satisfies it)."""

    def fresh(self) -> PauseSet: ...


class HealthMonitor:
    """Run with `.run()`; safe to call from many processes at once (one wins the lock)."""

    def __init__(
        self,
        *,
        policy: MonitorPolicy,
        instances: InstanceStore,
        alerts: AlertManager,
        evolution: EvolutionFactory,
        limiter: Limiter,
        client: redis.Redis,
        clock: Clock,
        poll: PollPolicy | None = None,
        ban_codes: frozenset[int] = DEFAULT_BAN_CODES,
        deliveries: DeliverySource | None = None,
        delivery_window: DeliveryWindow | None = None,
        pauses: PauseSource | None = None,
        warmup: tuple[tuple[int, ...], ZoneInfo] | None = None,
    ) -> None:
        self._pauses = pauses
        self._warmup = warmup  # (WARMUP_SCHEDULE, TIMEZONE): loads against effective caps
        self._policy = policy
        self._instances = instances
        self._alerts = alerts
        self._evolution = evolution
        self._limiter = limiter
        self._redis = client
        self._clock = clock
        self._poll = poll or PollPolicy()
        self._ban_codes = ban_codes
        self._deliveries = deliveries
        self._delivery_window = delivery_window or DeliveryWindow()

    def run(self) -> HealthReport:
        lock = self._redis.lock(keys.lock("health"), timeout=LOCK_TTL_SECONDS, blocking=False)
        if not lock.acquire(blocking=False):
            log.info("health check skipped: another run holds the lock")
            return HealthReport(ran=False)
        try:
            return self._run_locked()
        finally:
            try:
                lock.release()
            except LockError:
                log.warning("health check outlived its lock (%d s)", LOCK_TTL_SECONDS)

    def evaluate_alerts(self, migrated: Mapping[str, int] | None = None) -> Applied | None:
        """Plan and apply alerts from the recorded statuses now, as a run does after its
        poll (a webhook changed a status). None when a run holds the lock (try again)."""
        lock = self._redis.lock(keys.lock("health"), timeout=LOCK_TTL_SECONDS, blocking=False)
        if not lock.acquire(blocking=False):
            return None
        try:
            now = self._clock.now()
            applied = self._alerts.apply(self._transitions(self._snapshot(now, migrated)), now)
            self._alerts.deliver_pending(now)
            return applied
        finally:
            with contextlib.suppress(LockError):
                lock.release()

    def _run_locked(self) -> HealthReport:
        views = self._instances.all()
        observed_at = to_datetime(self._clock.now())  # the poll reads states after this
        started = time.monotonic()
        polled = asyncio.run(self._read_states([v.name for v in views]))
        poll_seconds = time.monotonic() - started
        now = self._clock.now()
        changes, migrated = self._record(views, polled, to_datetime(now), observed_at)
        note_licence_gate(self._redis, polled.licence_required, now)
        if changes:
            self._redis.incr(keys.ROUTING_VERSION)  # every worker's routing reloads now
        snapshot = self._snapshot(now, migrated)
        applied = self._alerts.apply(self._transitions(snapshot), now)
        delivered = self._alerts.deliver_pending(now)
        self._mark_run(now)
        circuit = self._policy.breaker.circuit
        online = sum(is_online(v, circuit(v, now)) for v in snapshot.instances)
        report = HealthReport(
            ran=True,
            mode=polled.mode,
            checked=len(views),
            online=online,
            changes=tuple(changes),
            migrated=migrated,
            alerts=applied,
            notifications=delivered,
            poll_seconds=poll_seconds,
        )
        _log_report(report)
        return report

    async def _read_states(self, names: Sequence[str]) -> PollResult:
        async with self._evolution() as client:
            return await poll_states(client, names, self._poll)

    # -- statuses -------------------------------------------------------------------------

    def _record(
        self, views: Sequence[InstanceView], polled: PollResult, at: datetime, observed_at: datetime
    ) -> tuple[list[StatusChange], dict[str, int]]:
        changes: list[StatusChange] = []
        migrated: dict[str, int] = {}
        if polled.licence_required:
            return changes, migrated  # the gate said nothing about any instance
        for view in views:
            if view.status is InstanceStatus.BANNED:
                # Sticky: only an operator un-bans. Contacts still pinned to it are moved off
                # now: the migration that went with the ban failed, or never ran.
                moved = self._instances.migrate_contacts_off(view.name)
                if moved:
                    migrated[view.name] = moved
                    log.warning("instance %s is banned: %d contacts moved off it", view.name, moved)
                continue
            seen = observe(polled.states.get(view.name), self._ban_codes)
            if seen.status is view.status:
                continue  # the common case: no transaction (set_status re-checks under lock)
            recorded = record_observation(self._instances, view.name, seen, at, observed_at)
            if recorded.change is not None:
                changes.append(recorded.change)
            if recorded.migrated is not None:
                migrated[view.name] = recorded.migrated
        return changes, migrated

    # -- alerts ---------------------------------------------------------------------------

    def _snapshot(self, now: float, migrated: Mapping[str, int] | None) -> Snapshot:
        views = self._instances.all()
        paused = self._pauses.fresh().all_since if self._pauses is not None else None
        return Snapshot(
            now,
            views,
            self._loads(views, now),
            migrated or {},
            self._delivery(now),
            all_paused_since=paused,
            licence_required_since=licence_required_since(self._redis),
        )

    def _delivery(self, now: float) -> Mapping[str, DeliveryCounts]:
        if self._deliveries is None:
            return {}
        window = self._delivery_window
        since, until = now - window.window_seconds, now - window.grace_seconds
        return self._deliveries.delivery_counts(to_datetime(since), to_datetime(until))

    def _loads(self, views: Sequence[InstanceView], now: float) -> dict[str, float]:
        """load_pct per active, not banned instance (percent, from the limiter), against the
        caps in force (a warming number's effective caps)."""
        live = [v for v in views if v.active and v.status is not InstanceStatus.BANNED]
        if self._warmup is not None:
            live = list(warmed(live, now, *self._warmup))
        candidates = [Candidate(v.name, v.hourly_cap, v.daily_cap) for v in live]
        return {u.name: u.load_pct for u in self._limiter.usage(candidates)}

    def _transitions(self, snapshot: Snapshot) -> list[Transition]:
        holding = conditions(snapshot, self._policy)
        return plan(holding, self._alerts.open_alerts(), snapshot, self._policy)

    def _mark_run(self, now: float) -> None:
        """Stamp the run (unix seconds) and count it: dashboards and the beat test read these."""
        pipe = self._redis.pipeline()
        pipe.set(LAST_RUN_KEY, repr(now))
        pipe.incr(RUNS_KEY)
        pipe.execute()


def _log_report(report: HealthReport) -> None:
    log.info(
        "health check: %d instances via %s in %.2f s, %d online, %d changes; alerts "
        "+%d opened %d reminded %d resolved; notifications %d sent %d pending-failed",
        report.checked,
        report.mode,
        report.poll_seconds,
        report.online,
        len(report.changes),
        report.alerts.opened,
        report.alerts.reminded,
        report.alerts.resolved,
        report.notifications.sent,
        report.notifications.failed,
    )


# --- one per process -------------------------------------------------------------------


def evolution_factory(settings: Settings, poll: PollPolicy | None = None) -> EvolutionFactory:
    """A new async client per run (an httpx.AsyncClient belongs to one event loop), with a
    connection pool as wide as the probes in flight."""
    poll = poll or poll_policy_from(settings)
    key = settings.evolution_api_key.get_secret_value() if settings.evolution_api_key else None
    timeout = httpx.Timeout(
        poll.timeout_seconds, connect=settings.evolution_connect_timeout_seconds
    )
    limits = httpx.Limits(max_connections=poll.max_concurrency, max_keepalive_connections=20)

    def open_client() -> AsyncEvolutionClient:
        transport = httpx.AsyncHTTPTransport(limits=limits)
        return AsyncEvolutionClient(
            settings.evolution_api_url, key, timeout=timeout, transport=transport
        )

    return open_client


def build_monitor(res: Resources) -> HealthMonitor:
    """The health check of this process, from its resources (notifiers built here, once)."""
    settings = res.settings
    alerts = AlertManager(AlertStore(res.sessions), build_notifiers(settings))
    clock = RedisClock(res.redis, test_clock_enabled=settings.test_clock_enabled)
    return HealthMonitor(
        policy=policy_from(settings),
        instances=res.instances,
        alerts=alerts,
        evolution=evolution_factory(settings),
        limiter=res.limiter,
        client=res.redis,
        clock=clock,
        poll=poll_policy_from(settings),
        ban_codes=settings.ban_codes,
        deliveries=ReceiptStore(res.sessions),
        delivery_window=delivery_window_from(settings),
        pauses=res.pauses,
        warmup=(settings.warmup_ramp, settings.zone),
    )


def monitor_of(res: Resources) -> HealthMonitor:
    """The monitor built on `res` (one per resources, so one per process)."""
    return res.service("monitor", lambda: build_monitor(res))


class AlertsBusy(RuntimeError):
    """A health check holds the lock; its own alert pass may predate the change: retry."""


def evaluate_alerts(res: Resources, migrated: Mapping[str, int] | None = None) -> Applied:
    """The alerts task's body; raises `AlertsBusy` when a run holds the lock."""
    applied = monitor_of(res).evaluate_alerts(migrated)
    if applied is None:
        raise AlertsBusy("a health check is running")
    return applied


def run_health_check(res: Resources) -> HealthReport:
    """The health check task's body; after a run, one queue-depth sample for the console."""
    report = monitor_of(res).run()
    if report.ran:
        sample_queue(res)
    return report


def sample_queue(res: Resources) -> None:
    """One queue-depth sample for the console's chart; a failure is logged, never raised
    (the health check's own work is done by then)."""
    try:
        ChartStore(res.sessions).sample_queue(to_datetime(res.limiter.now()))
    except SQLAlchemyError:
        log.exception("queue-depth sample failed")
