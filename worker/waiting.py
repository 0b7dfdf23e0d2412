"""When a message that cannot go now is tried again: a countdown, or a time in PostgreSQL.

Pure: no I/O, no clock, no randomness. Callers pass `now` and the jitter they drew; every
time is unix seconds, every duration seconds. A decision is one of

- `Requeue(countdown_seconds)`: the delivery task runs again after that countdown (at most
  `max_countdown_seconds`, beyond which the sweep would take the task for lost);
- `Park(until)`: the message waits in PostgreSQL (`waiting`, `not_before = until`) and the
  sweep wakes it;
- `ParkInWindow`: park in the capped window that starts at `window_start`; the caller books
  a place in that window (a shared counter) and `wake_in_window` turns the place into a time,
  so each window wakes about as many messages as it can send.

`after_send_failure` may also answer None: give up (the message fails).
"""

from __future__ import annotations

from dataclasses import dataclass

from config import Settings
from worker.limiter.timezones import DAY_SECONDS, HOUR_SECONDS

#: A wait that is not a capped window: how long a booked wake-up counter outlives its window.
BOOKING_MARGIN_SECONDS = 2 * DAY_SECONDS


@dataclass(frozen=True, slots=True)
class WaitPolicy:
    """The settings that shape waits (seconds throughout)."""

    max_countdown_seconds: float
    sticky_patience_seconds: float
    offline_backoff_seconds: float
    offline_backoff_max_seconds: float
    retry_backoff_seconds: float
    retry_backoff_max_seconds: float
    max_send_attempts: int

    @classmethod
    def from_settings(cls, settings: Settings) -> WaitPolicy:
        return cls(
            max_countdown_seconds=float(settings.max_countdown_seconds),
            sticky_patience_seconds=settings.sticky_patience_seconds,
            offline_backoff_seconds=settings.offline_backoff_seconds,
            offline_backoff_max_seconds=settings.offline_backoff_max_seconds,
            retry_backoff_seconds=settings.retry_backoff_seconds,
            retry_backoff_max_seconds=settings.retry_backoff_max_seconds,
            max_send_attempts=settings.max_send_attempts,
        )


@dataclass(frozen=True, slots=True)
class Requeue:
    countdown_seconds: float


@dataclass(frozen=True, slots=True)
class Park:
    until: float


@dataclass(frozen=True, slots=True)
class ParkInWindow:
    """Park in the window (an hour or a day) starting at `window_start`, which `capacity`
    sends fill; never past `expires_at`. `jitter` spreads the wake-ups of one window."""

    window_start: float
    window_seconds: float
    capacity: int
    expires_at: float
    jitter: float
    #: How long the window's booking counter must live, counted from `now`.
    booking_ttl_seconds: int


Wait = Requeue | Park | ParkInWindow


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff: base × 2^(attempt−1), at most `cap` seconds."""
    return float(min(cap, base * 2.0 ** max(0, attempt - 1)))


def requeue(countdown_seconds: float, policy: WaitPolicy) -> Requeue:
    """A countdown, cut to the longest one a task may have."""
    return Requeue(min(countdown_seconds, policy.max_countdown_seconds))


def patience_left(now: float, created_at: float, policy: WaitPolicy) -> float:
    """How long a message created at `created_at` still waits for its contact's sticky
    instance (STICKY_PATIENCE_SECONDS), at least one second."""
    return max(1.0, created_at + policy.sticky_patience_seconds - now)


def for_preferred(now: float, created_at: float, policy: WaitPolicy) -> Requeue:
    """The contact's sticky instance is away for a while: ask again after the offline
    backoff, or when patience runs out if that is sooner."""
    wait = min(policy.offline_backoff_seconds, patience_left(now, created_at, policy))
    return requeue(wait, policy)


def for_instances(requeues: int, policy: WaitPolicy) -> Requeue:
    """No instance online: exponential offline backoff on the message's requeue count."""
    wait = backoff_seconds(
        requeues + 1, policy.offline_backoff_seconds, policy.offline_backoff_max_seconds
    )
    return requeue(wait, policy)


def for_licence(requeues: int, now: float, policy: WaitPolicy) -> Park:
    """Evolution refuses every route until it is activated (no number nor message at
    fault): park for the offline backoff on the message's requeue count, so a long outage
    waits in PostgreSQL instead of a chain of countdowns."""
    wait = backoff_seconds(
        requeues + 1, policy.offline_backoff_seconds, policy.offline_backoff_max_seconds
    )
    return Park(now + wait)


def for_capacity(
    *,
    now: float,
    retry_at: float,
    caps_full: bool,
    created_at: float,
    expires_at: float,
    patient: bool,
    capacity_hour: int,
    capacity_day: int,
    jitter: float,
    wake_jitter: float,
    policy: WaitPolicy,
) -> Wait:
    """No slot free before `retry_at` (the limiter's answer). Requeued when the wait fits in
    a countdown (with `patient`, it is cut to the sticky patience left, after which other
    instances may take the message); parked otherwise, until `retry_at` (a pacing or
    recipient gap: `caps_full` false) or in the capped window that `retry_at` opens, whose
    `capacity_hour`/`capacity_day` are the candidates' summed caps."""
    wait = max(0.0, retry_at - now) + jitter
    if patient:
        wait = min(wait, patience_left(now, created_at, policy))
    if wait <= policy.max_countdown_seconds:
        return requeue(wait, policy)
    if not caps_full:
        return Park(min(retry_at + wake_jitter, expires_at))
    daily = retry_at - now > HOUR_SECONDS
    return ParkInWindow(
        window_start=retry_at,
        window_seconds=DAY_SECONDS if daily else HOUR_SECONDS,
        capacity=capacity_day if daily else capacity_hour,
        expires_at=expires_at,
        jitter=wake_jitter,
        booking_ttl_seconds=int(retry_at - now) + BOOKING_MARGIN_SECONDS,
    )


def wake_in_window(park: ParkInWindow, position: int) -> Park:
    """The wake-up time of the `position`-th booking (from 1) in `park`'s window: the first
    `capacity` bookings wake at its start, the next ones a window later, and so on."""
    windows_later = (position - 1) // max(1, park.capacity)
    until = park.window_start + windows_later * park.window_seconds + park.jitter
    return Park(min(until, park.expires_at))


def after_send_failure(
    attempts: int, now: float, retry_after_seconds: float | None, policy: WaitPolicy
) -> Requeue | Park | None:
    """After a transient send failure (the `attempts`-th): None when the attempts are used
    up (MAX_SEND_ATTEMPTS); else exponential retry backoff, at least the pause the number
    asked for (`retry_after_seconds`, a rate limit) up to the backoff's cap. A wait longer
    than a countdown may be is parked instead."""
    if attempts >= policy.max_send_attempts:
        return None
    delay = backoff_seconds(
        attempts, policy.retry_backoff_seconds, policy.retry_backoff_max_seconds
    )
    if retry_after_seconds:
        delay = min(max(delay, retry_after_seconds), policy.retry_backoff_max_seconds)
    if delay > policy.max_countdown_seconds:
        return Park(now + delay)
    return Requeue(delay)


def before_asking_again(requeues: int, policy: WaitPolicy) -> float:
    """Evolution could not answer a look-up now: seconds before asking again (retry
    backoff on the requeue count)."""
    return backoff_seconds(
        requeues + 1, policy.retry_backoff_seconds, policy.retry_backoff_max_seconds
    )


def for_quiet_hours(quiet_ends: float, spread: float, expires_at: float) -> Park:
    """The recipient's quiet hours end at `quiet_ends`: park until then plus `spread` (so a
    morning's messages do not all wake at once), never past `expires_at`."""
    return Park(min(quiet_ends + spread, expires_at))
