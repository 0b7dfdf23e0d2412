"""The warm-up ramp: a new number's daily cap grows day by day (WARMUP_SCHEDULE).

Day 1 is the local calendar day (in TIMEZONE, where daily windows reset) on which the
number was added, or its warm-up restarted; day k uses the k-th cap of the schedule. The
effective daily cap is min(own daily cap, ramp cap); the hourly cap shrinks in the same
proportion, rounded down, at least 1. After the schedule's last day the number is warm:
its own caps apply and `warmup_day` is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from models.views import InstanceView


@dataclass(frozen=True, slots=True)
class EffectiveCaps:
    """Sends per hour and per day a number may make now; `warmup_day` is 1-based, None
    when it is not warming up."""

    hourly_cap: int
    daily_cap: int
    warmup_day: int | None


def warmup_day(started: datetime, now: float, zone: ZoneInfo) -> int:
    """1 + whole local days from `started`'s local date to `now`'s (unix seconds)."""
    start = started.astimezone(zone).date()
    today = datetime.fromtimestamp(now, tz=UTC).astimezone(zone).date()
    return max(1, (today - start).days + 1)


def effective_caps(
    hourly_cap: int,
    daily_cap: int,
    started: datetime | None,
    now: float,
    schedule: tuple[int, ...],
    zone: ZoneInfo,
) -> EffectiveCaps:
    """The caps routing and the limiter apply to a number at `now` (unix seconds)."""
    if not schedule or started is None:
        return EffectiveCaps(hourly_cap, daily_cap, None)
    day = warmup_day(started, now, zone)
    if day > len(schedule):
        return EffectiveCaps(hourly_cap, daily_cap, None)
    ramp = schedule[day - 1]
    if ramp >= daily_cap:
        return EffectiveCaps(hourly_cap, daily_cap, day)
    return EffectiveCaps(max(1, hourly_cap * ramp // daily_cap), ramp, day)


def warmed(
    views: Sequence[InstanceView], now: float, schedule: tuple[int, ...], zone: ZoneInfo
) -> tuple[InstanceView, ...]:
    """`views` with their caps replaced by the effective ones at `now` (unix seconds), so
    routing's least-loaded order and the limiter's caps both use them."""
    out = []
    for view in views:
        caps = effective_caps(
            view.hourly_cap, view.daily_cap, view.warmup_since, now, schedule, zone
        )
        same = caps.hourly_cap == view.hourly_cap and caps.daily_cap == view.daily_cap
        out.append(
            view if same else replace(view, hourly_cap=caps.hourly_cap, daily_cap=caps.daily_cap)
        )
    return tuple(out)


def local_day(now: float, zone: ZoneInfo) -> int:
    """The local calendar day of `now` (a proleptic ordinal): effective caps change only
    when it does."""
    return datetime.fromtimestamp(now, tz=UTC).astimezone(zone).date().toordinal()
