"""Read model of the instance pool: per-instance usage rows, the summary and its status.

Numbers come from where routing reads them: the instances table (`InstanceStore`) and the
limiter's Redis counters (`usage()`, one round trip for all instances). The pure functions
at the top (overall status, hourly series) hold the dashboard's rules and are unit-tested
on plain values; `load_pct` is the limiter's (`InstanceUsage.load_pct`), "online" is
`worker.breaker.is_online`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from models.activity_store import ActivityStore
from models.enums import InstanceStatus, MessageState, status_emoji
from models.instance_store import InstanceStore
from models.receipt_store import DeliveryCounts
from models.views import CircuitState, InstanceView
from worker.breaker import BreakerPolicy, is_online
from worker.limiter import Candidate, InstanceUsage
from worker.policy.pauses import PauseSet
from worker.policy.warmup import EffectiveCaps, effective_caps

#: Above this share of the day's capacity (percent) the pool is `warning`.
DEFAULT_WARNING_PCT = 80.0
HOURS_OF_HISTORY = 24


# -- pure rules -----------------------------------------------------------------------
def capacity_used_pct(sent_today: int, capacity_day: int) -> float:
    """Sent today as a percentage of the day's capacity of the online instances (0 if none)."""
    return round(100 * sent_today / capacity_day, 1) if capacity_day > 0 else 0.0


def overall_status(
    total: int, online: int, used_pct: float, warning_pct: float = DEFAULT_WARNING_PCT
) -> str:
    """The rules, in order: none online → critical; fewer than half online →
    degraded; more than `warning_pct` percent of capacity used → warning; else healthy."""
    if online == 0:
        return "critical"
    if online < total / 2:
        return "degraded"
    if used_pct > warning_pct:
        return "warning"
    return "healthy"


def is_available(view: InstanceView, has_capacity: bool, circuit: CircuitState) -> bool:
    """Routing would consider it now: online (`is_online`) with room in both caps."""
    return is_online(view, circuit) and has_capacity


def local_hour_starts(
    now: datetime, zone: ZoneInfo, hours: int = HOURS_OF_HISTORY
) -> list[datetime]:
    """The starts (aware, in `zone`) of the last `hours` local hours, oldest first; the last
    one is the hour that contains `now`."""
    current = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    current_utc = current.astimezone(UTC)
    return [
        (current_utc - timedelta(hours=back)).astimezone(zone) for back in range(hours - 1, -1, -1)
    ]


def hourly_series(
    starts: Sequence[datetime], counts: Mapping[datetime, int]
) -> list[dict[str, Any]]:
    """Zero-filled `{"hour": ISO local start, "sent": n}` per hour; `counts` is keyed by
    naive local hour starts (what `ActivityStore.sends_per_hour` returns)."""
    return [
        {"hour": start.isoformat(), "sent": counts.get(start.replace(tzinfo=None), 0)}
        for start in starts
    ]


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- values -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class InstanceRow:
    """One instance as people see it. Counts are sends in the current local hour / day."""

    view: InstanceView
    messages_hour: int
    messages_day: int
    load_pct: float
    has_capacity: bool
    circuit: CircuitState
    #: Delivered ÷ sent over the last 24 h (percent, from receipts); None before any receipt.
    delivered_pct_24h: float | None = None
    paused: bool = False  # an operator paused it: out of routing until resumed
    caps: EffectiveCaps | None = None  # warm-up caps in force; None: its own

    @property
    def available(self) -> bool:
        return not self.paused and is_available(self.view, self.has_capacity, self.circuit)

    @property
    def online(self) -> bool:
        """`worker.breaker.is_online` for this row's instance and circuit."""
        return is_online(self.view, self.circuit)

    def to_json(self) -> dict[str, Any]:
        """The dashboard row (the API's documented keys)."""
        v = self.view
        return {
            "name": v.name,
            "phone": v.phone,
            "status": v.status.value,
            "status_emoji": status_emoji(v.status.value),
            "active": v.active,
            "messages_hour": self.messages_hour,
            "capacity_hour": v.hourly_cap,
            "messages_day": self.messages_day,
            "capacity_day": v.daily_cap,
            "load_pct": self.load_pct,
            "available": self.available,
            "circuit": self.circuit.value,
            "last_message_at": iso(v.last_message_at),
            "delivered_pct_24h": self.delivered_pct_24h,
            "paused": self.paused,
            "warmup_day": self.caps.warmup_day if self.caps else None,
            "effective_hourly_cap": self.caps.hourly_cap if self.caps else v.hourly_cap,
            "effective_daily_cap": self.caps.daily_cap if self.caps else v.daily_cap,
        }

    def to_stats_json(self) -> dict[str, Any]:
        """The `/stats/instances` row."""
        row = self.to_json()
        keys = (
            "name",
            "status",
            "messages_hour",
            "capacity_hour",
            "messages_day",
            "capacity_day",
            "load_pct",
            "available",
        )
        return {key: row[key] for key in keys}


@dataclass(frozen=True, slots=True)
class Summary:
    total_instances: int
    online: int
    offline: int
    banned: int
    capacity_day: int
    sent_today: int
    capacity_used_pct: float

    def to_json(self) -> dict[str, Any]:
        return {
            "total_instances": self.total_instances,
            "online": self.online,
            "offline": self.offline,
            "banned": self.banned,
            "capacity_day": self.capacity_day,
            "sent_today": self.sent_today,
            "capacity_used_pct": self.capacity_used_pct,
        }


def summarize(rows: Sequence[InstanceRow]) -> Summary:
    """The summary: capacity counts online instances only; sends count all."""
    online = [r for r in rows if r.online]
    banned = sum(1 for r in rows if r.view.status is InstanceStatus.BANNED)
    capacity = sum(r.view.daily_cap for r in online)
    sent = sum(r.messages_day for r in rows)
    return Summary(
        total_instances=len(rows),
        online=len(online),
        offline=len(rows) - len(online) - banned,
        banned=banned,
        capacity_day=capacity,
        sent_today=sent,
        capacity_used_pct=capacity_used_pct(sent, capacity),
    )


@dataclass(frozen=True, slots=True)
class Overview:
    """The whole pool at `now` (unix seconds, limiter clock)."""

    now: float
    rows: list[InstanceRow]
    summary: Summary
    status: str

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "timestamp": datetime.fromtimestamp(self.now, tz=UTC).isoformat(),
            "summary": self.summary.to_json(),
            "instances": [row.to_json() for row in self.rows],
        }

    def to_stats_json(self) -> dict[str, Any]:
        """`/stats/instances`: here `capacity_day` is every instance's ."""
        return {
            "total_instances": self.summary.total_instances,
            "online": self.summary.online,
            "capacity_day": sum(row.view.daily_cap for row in self.rows),
            "sent_today": self.summary.sent_today,
            "instances": [row.to_stats_json() for row in self.rows],
        }


def message_counts(by_state: Mapping[str, int]) -> dict[str, int]:
    """Counts for every message state, zero-filled, in life-cycle order."""
    return {state.value: int(by_state.get(state.value, 0)) for state in MessageState}


# -- the reader ---------------------------------------------------------------------------
class UsageSource(Protocol):
    """What the reader needs of the limiter (RedisLimiter satisfies it)."""

    def usage(self, candidates: Sequence[Candidate]) -> list[InstanceUsage]: ...

    def now(self) -> float: ...


class DeliverySource(Protocol):
    """Receipts per instance (`models.receipt_store.ReceiptStore` satisfies it)."""

    def delivery_counts(
        self, since: datetime, until: datetime | None = None
    ) -> Mapping[str, DeliveryCounts]: ...


class PauseSource(Protocol):
    """The pauses in force (worker/pauses.py `PauseBoard` satisfies it)."""

    def current(self) -> PauseSet: ...


class StatsReader:
    """Builds rows, overview and detail from the instances table and the limiter counters."""

    def __init__(
        self,
        instances: InstanceStore,
        activity: ActivityStore,
        limiter: UsageSource,
        breaker: BreakerPolicy,
        *,
        zone: ZoneInfo,
        warning_pct: float = DEFAULT_WARNING_PCT,
        deliveries: DeliverySource | None = None,
        pauses: PauseSource | None = None,
        warmup: tuple[int, ...] = (),
    ) -> None:
        self._pauses = pauses
        self._warmup = warmup
        self._instances = instances
        self._activity = activity
        self._limiter = limiter
        self._breaker = breaker
        self._zone = zone
        self._warning_pct = warning_pct
        self._deliveries = deliveries

    def overview(self) -> Overview:
        """Every instance (one SQL query, two Redis round trips) with the summary."""
        now = self._limiter.now()
        rows = self._rows(self._instances.all(), now)
        summary = summarize(rows)
        status = overall_status(
            summary.total_instances, summary.online, summary.capacity_used_pct, self._warning_pct
        )
        return Overview(now, rows, summary, status)

    def detail(self, name: str) -> dict[str, Any]:
        """One instance: caps, usage, contacts, circuit and sends per local hour over 24 h.

        Raises `models.instance_store.UnknownInstance` for an unknown name.
        """
        view = self._instances.get(name)
        now = self._limiter.now()
        row = self._rows([view], now)[0]
        contacts = self._instances.contacts_assigned([name]).get(name, 0)
        return detail_json(row, contacts, self._history(name, now))

    def _history(self, name: str, now: float) -> list[dict[str, Any]]:
        starts = local_hour_starts(datetime.fromtimestamp(now, tz=UTC), self._zone)
        counts = self._activity.sends_per_hour(name, starts[0], self._zone.key)
        return hourly_series(starts, counts)

    def _rows(self, views: Sequence[InstanceView], now: float) -> list[InstanceRow]:
        """Rows at `now`; load and capacity count against the effective (warm-up) caps."""
        caps = [
            effective_caps(v.hourly_cap, v.daily_cap, v.warmup_since, now, self._warmup, self._zone)
            for v in views
        ]
        candidates = [
            Candidate(v.name, c.hourly_cap, c.daily_cap) for v, c in zip(views, caps, strict=True)
        ]
        usages = self._limiter.usage(candidates)
        paused = self._pauses.current().instances if self._pauses is not None else {}
        delivered = self._delivered_pct(now)
        return [
            replace(
                self._row(view, usage, now, delivered.get(view.name), paused=view.name in paused),
                caps=cap,
            )
            for view, usage, cap in zip(views, usages, caps, strict=True)
        ]

    def _delivered_pct(self, now: float) -> dict[str, float | None]:
        """delivered_pct_24h per instance (one query over the last 24 h of sends)."""
        if self._deliveries is None:
            return {}
        since = datetime.fromtimestamp(now, tz=UTC) - timedelta(hours=24)
        counts = self._deliveries.delivery_counts(since)
        return {name: c.delivered_pct for name, c in counts.items()}

    def _row(
        self,
        view: InstanceView,
        usage: InstanceUsage,
        now: float,
        delivered_pct: float | None = None,
        *,
        paused: bool = False,
    ) -> InstanceRow:
        return InstanceRow(
            view=view,
            messages_hour=usage.sent_hour,
            messages_day=usage.sent_day,
            load_pct=usage.load_pct,
            has_capacity=usage.has_capacity,
            circuit=self._breaker.circuit(view, now),
            delivered_pct_24h=delivered_pct,
            paused=paused,
        )


def detail_json(row: InstanceRow, contacts: int, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The detail body: the row's keys, the nested `capacity`/`usage`, and more."""
    v = row.view
    return {
        **row.to_json(),
        "capacity": {"hour": v.hourly_cap, "day": v.daily_cap},
        "usage": {
            "messages_hour": row.messages_hour,
            "messages_day": row.messages_day,
            "load_pct": row.load_pct,
        },
        "contacts_assigned": contacts,
        "consecutive_failures": v.consecutive_failures,
        "circuit_opened_at": iso(v.circuit_opened_at),
        "status_reason": v.status_reason,
        "status_changed_at": iso(v.status_changed_at),
        "sends_last_24h": history,
    }
