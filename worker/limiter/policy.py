"""The limiter's policy: values, the `Limiter` protocol and the pure rules both backends apply.

`reserve.lua` applies these same rules atomically inside Redis; `MemoryLimiter` applies them
under a lock. A change here must be mirrored there (the shared behavioural tests check it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

#: Counters outlive their window by this much (seconds), then Redis drops them.
HOUR_KEY_MARGIN_SECONDS = 3600
DAY_KEY_MARGIN_SECONDS = 86400
#: Last-send stamps live at least this long (seconds).
MIN_LAST_SEND_TTL_SECONDS = 3600

Reason = Literal["caps", "recipient_gap", "pacing", "no_candidates"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """An instance that may send, with its caps (sends per local hour / per local day)."""

    name: str
    hourly_cap: int
    daily_cap: int


@dataclass(frozen=True, slots=True)
class SpacingPolicy:
    """Optional spacing, in seconds. 0 disables a rule."""

    recipient_min_gap_seconds: float = 0
    instance_min_interval_seconds: float = 0
    instance_interval_jitter_seconds: float = 0


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reserved slot. Counts are after reserving; windows name the counters incremented."""

    instance: str
    now: float
    hour_window: int
    day_window: int
    hour_count: int
    day_count: int


@dataclass(frozen=True, slots=True)
class NoCapacity:
    """Nothing reserved. `retry_at` (unix seconds) is the earliest a slot could free up."""

    now: float
    retry_at: float
    reason: Reason


@dataclass(frozen=True, slots=True)
class InstanceUsage:
    """Sends counted in the current local hour and day; `load_pct` in percent (0.1 steps)."""

    name: str
    sent_hour: int
    hourly_cap: int
    sent_day: int
    daily_cap: int
    load_pct: float
    has_capacity: bool


class Limiter(Protocol):
    def reserve(
        self, candidates: Sequence[Candidate], *, phone: str, strict: int = 0
    ) -> Reservation | NoCapacity:
        """Reserve one slot on the first candidate that fits (see `try_order`)."""
        ...

    def release(self, reservation: Reservation) -> None:
        """Give back a slot whose send failed (only the windows it was counted in)."""
        ...

    def usage(self, candidates: Sequence[Candidate]) -> list[InstanceUsage]:
        """Current counts of the candidates, in the given order."""
        ...

    def book_wake(self, retry_at: float, ttl_seconds: int) -> int:
        """Book one wake-up at `retry_at` (unix seconds); returns the booking's 1-based position."""
        ...

    def now(self) -> float:
        """The limiter clock, unix seconds."""
        ...


@dataclass(frozen=True, slots=True)
class CandidateState:
    """What the policy needs to know of one candidate at `now`."""

    hour_count: int
    hourly_cap: int
    day_count: int
    daily_cap: int
    last_send: float | None = None


def fill_ratio(count: int, cap: int) -> float:
    """count / cap; a cap of 0 (or less) counts as full (1.0)."""
    return count / cap if cap > 0 else 1.0


def load(state: CandidateState) -> float:
    """max(hour_count / hourly_cap, day_count / daily_cap): the busier of the two windows."""
    return max(
        fill_ratio(state.hour_count, state.hourly_cap),
        fill_ratio(state.day_count, state.daily_cap),
    )


def has_capacity(state: CandidateState) -> bool:
    """Both windows below their caps (spacing not considered)."""
    return state.hour_count < state.hourly_cap and state.day_count < state.daily_cap


def usage_of(candidate: Candidate, hour_count: int, day_count: int) -> InstanceUsage:
    """The public view of one candidate's counters."""
    state = CandidateState(hour_count, candidate.hourly_cap, day_count, candidate.daily_cap)
    return InstanceUsage(
        name=candidate.name,
        sent_hour=hour_count,
        hourly_cap=candidate.hourly_cap,
        sent_day=day_count,
        daily_cap=candidate.daily_cap,
        load_pct=round(100 * load(state), 1),
        has_capacity=has_capacity(state),
    )


def try_order(loads: Sequence[float], strict: int) -> list[int]:
    """Indexes in the order to try: the first `strict` as given, the rest by load, then index."""
    head = list(range(min(strict, len(loads))))
    tail = sorted(range(len(head), len(loads)), key=lambda index: (loads[index], index))
    return head + tail


def free_at(
    state: CandidateState, *, now: float, interval: float, hour_end: float, day_end: float
) -> tuple[float, Reason]:
    """When this candidate could take a send (unix seconds; <= now means now) and what binds."""
    caps_at = now
    if state.day_count >= state.daily_cap:
        caps_at = day_end
    elif state.hour_count >= state.hourly_cap:
        caps_at = hour_end
    paced_at = now
    if interval > 0 and state.last_send is not None:
        paced_at = state.last_send + interval
    return (paced_at, "pacing") if paced_at > caps_at else (caps_at, "caps")


def recipient_free_at(last_send: float | None, gap: float) -> float | None:
    """When the recipient may get the next message, or None if the gap does not apply."""
    return None if gap <= 0 or last_send is None else last_send + gap


def jittered_interval(spacing: SpacingPolicy, rng: random.Random) -> float:
    """Pacing interval for one reserve call, seconds: interval + uniform(0, jitter)."""
    jitter = spacing.instance_interval_jitter_seconds
    extra = rng.uniform(0, jitter) if jitter > 0 else 0.0
    return spacing.instance_min_interval_seconds + extra


def last_send_ttl(spacing: SpacingPolicy) -> int:
    """How long last-send stamps are kept, whole seconds."""
    longest = max(
        spacing.recipient_min_gap_seconds,
        spacing.instance_min_interval_seconds + spacing.instance_interval_jitter_seconds,
        MIN_LAST_SEND_TTL_SECONDS,
    )
    return math.ceil(longest)


def choose(
    states: Sequence[CandidateState],
    *,
    now: float,
    strict: int,
    interval: float,
    hour_end: float,
    day_end: float,
) -> int | tuple[float, Reason]:
    """Index of the first candidate (in `try_order`) that fits now, else (retry_at, reason).

    retry_at is the earliest `free_at` over all candidates; ties go to the earlier tried.
    """
    best: tuple[float, Reason] | None = None
    for index in try_order([load(state) for state in states], strict):
        at, reason = free_at(
            states[index], now=now, interval=interval, hour_end=hour_end, day_end=day_end
        )
        if at <= now:
            return index
        if best is None or at < best[0]:
            best = (at, reason)
    assert best is not None, "choose() needs at least one candidate"
    return best
