"""An in-memory limiter with the Redis limiter's semantics, for unit tests of other modules.

Counters are kept under the same key names as in Redis and dropped after the same expiry.
One process only; thread-safe.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Sequence
from zoneinfo import ZoneInfo

from worker import keys
from worker.clock import Clock
from worker.limiter import policy
from worker.limiter.policy import (
    Candidate,
    CandidateState,
    InstanceUsage,
    NoCapacity,
    Reservation,
    SpacingPolicy,
)
from worker.limiter.timezones import DAY_SECONDS, HOUR_SECONDS, window_end, window_ids


class MemoryLimiter:
    """Caps and spacing on dictionaries, read against `clock` (unix seconds)."""

    def __init__(
        self,
        clock: Clock,
        zone: ZoneInfo,
        spacing: SpacingPolicy,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._zone = zone
        self._spacing = spacing
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, float]] = {}  # key -> (value, expires_at)

    def now(self) -> float:
        """The limiter clock, unix seconds."""
        return self._clock.now()

    def reserve(
        self, candidates: Sequence[Candidate], *, phone: str, strict: int = 0
    ) -> Reservation | NoCapacity:
        """Reserve a slot on the first candidate that fits (same rules as reserve.lua)."""
        now = self.now()
        if not candidates:
            return NoCapacity(now=now, retry_at=math.inf, reason="no_candidates")
        with self._lock:
            self._expire(now)
            return self._reserve_locked(candidates, phone, strict, now)

    def release(self, reservation: Reservation) -> None:
        """Decrement the counters the reservation incremented (never below 0, never recreated)."""
        hour = keys.hour_counter(reservation.instance, reservation.hour_window)
        day = keys.day_counter(reservation.instance, reservation.day_window)
        with self._lock:
            self._expire(self.now())
            for key in (hour, day):
                self._decrement(key)

    def book_wake(self, retry_at: float, ttl_seconds: int) -> int:
        """Book one wake-up at `retry_at`; returns the booking's 1-based position."""
        now = self.now()
        with self._lock:
            self._expire(now)
            return self._increment(keys.wake_bookings(retry_at), now + max(1, ttl_seconds))

    def usage(self, candidates: Sequence[Candidate]) -> list[InstanceUsage]:
        """Counts of the current windows, in the given order."""
        now = self.now()
        hour_window, day_window = window_ids(self._zone, now)
        with self._lock:
            self._expire(now)
            return [
                policy.usage_of(c, *self._counts(c.name, hour_window, day_window))
                for c in candidates
            ]

    def _reserve_locked(
        self, candidates: Sequence[Candidate], phone: str, strict: int, now: float
    ) -> Reservation | NoCapacity:
        interval = policy.jittered_interval(self._spacing, self._rng)
        gap = self._spacing.recipient_min_gap_seconds
        eligible_at = policy.recipient_free_at(self._get(keys.phone_last_send(phone)), gap)
        if eligible_at is not None and eligible_at > now:
            return NoCapacity(now=now, retry_at=eligible_at, reason="recipient_gap")
        hour_window, day_window = window_ids(self._zone, now)
        states = [self._state(c, hour_window, day_window) for c in candidates]
        hour_end = window_end(self._zone, now, HOUR_SECONDS)
        day_end = window_end(self._zone, now, DAY_SECONDS)
        choice = policy.choose(
            states, now=now, strict=strict, interval=interval, hour_end=hour_end, day_end=day_end
        )
        if isinstance(choice, tuple):
            return NoCapacity(now=now, retry_at=choice[0], reason=choice[1])
        reservation = Reservation(candidates[choice].name, now, hour_window, day_window, 0, 0)
        return self._commit(reservation, phone, interval, (hour_end, day_end))

    def _commit(
        self, slot: Reservation, phone: str, interval: float, ends: tuple[float, float]
    ) -> Reservation:
        hour_key = keys.hour_counter(slot.instance, slot.hour_window)
        day_key = keys.day_counter(slot.instance, slot.day_window)
        hour_count = self._increment(hour_key, ends[0] + policy.HOUR_KEY_MARGIN_SECONDS)
        day_count = self._increment(day_key, ends[1] + policy.DAY_KEY_MARGIN_SECONDS)
        ttl = policy.last_send_ttl(self._spacing)
        if self._spacing.recipient_min_gap_seconds > 0:
            self._values[keys.phone_last_send(phone)] = (slot.now, slot.now + ttl)
        if interval > 0:
            self._values[keys.instance_last_send(slot.instance)] = (slot.now, slot.now + ttl)
        return Reservation(
            slot.instance, slot.now, slot.hour_window, slot.day_window, hour_count, day_count
        )

    def _state(self, candidate: Candidate, hour_window: int, day_window: int) -> CandidateState:
        hour_count, day_count = self._counts(candidate.name, hour_window, day_window)
        last = self._get(keys.instance_last_send(candidate.name))
        return CandidateState(
            hour_count, candidate.hourly_cap, day_count, candidate.daily_cap, last_send=last
        )

    def _counts(self, name: str, hour_window: int, day_window: int) -> tuple[int, int]:
        hour = self._get(keys.hour_counter(name, hour_window)) or 0
        day = self._get(keys.day_counter(name, day_window)) or 0
        return int(hour), int(day)

    def _get(self, key: str) -> float | None:
        entry = self._values.get(key)
        return None if entry is None else entry[0]

    def _increment(self, key: str, expires_at: float) -> int:
        value = (self._get(key) or 0) + 1
        self._values[key] = (value, expires_at)
        return int(value)

    def _decrement(self, key: str) -> None:
        entry = self._values.get(key)
        if entry is not None and entry[0] > 0:
            self._values[key] = (entry[0] - 1, entry[1])

    def _expire(self, now: float) -> None:
        """Drop what Redis would have dropped by `now` (seconds)."""
        for key in [key for key, (_, expires_at) in self._values.items() if expires_at <= now]:
            del self._values[key]
