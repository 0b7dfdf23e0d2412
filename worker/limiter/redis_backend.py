"""The limiter on Redis: one EVALSHA of `reserve.lua` per reserve (two after a clock jump)."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any, cast
from zoneinfo import ZoneInfo

import redis

from worker import keys
from worker.clock import RedisClock
from worker.limiter import policy
from worker.limiter.policy import (
    Candidate,
    InstanceUsage,
    NoCapacity,
    Reservation,
    SpacingPolicy,
)
from worker.limiter.timezones import (
    DAY_SECONDS,
    HOUR_SECONDS,
    offset_table,
    window_end,
    window_ids,
    window_start,
)

log = logging.getLogger("zapdispatch.limiter")

#: Per instance, the sends that spent a slot since the hour's and the day's start (both
#: aware datetimes): (hour_count, day_count). PostgreSQL's answer (MessageStore.spent_since).
SpentCounts = Callable[[datetime, datetime], Mapping[str, tuple[int, int]]]
#: How long one worker may hold the counters' rebuild lock, and others wait for it (seconds).
REBUILD_LOCK_SECONDS = 30

#: The script accepts `now` within this distance of the table's centre (seconds).
TABLE_VALID_SECONDS = 2 * DAY_SECONDS
#: The table itself extends a day further, so window ends past the valid range are exact.
TABLE_SPAN_SECONDS = TABLE_VALID_SECONDS + DAY_SECONDS
#: A cached table is rebuilt once the clock estimate is this close to its valid edge.
TABLE_REBUILD_MARGIN_SECONDS = DAY_SECONDS
#: With more non-strict candidates than this, a reserve first offers the script the strict
#: ones plus a random sample of this many (the least loaded of the sample wins), and every
#: candidate only when none of the sample fits. A reserve over 1,000 candidates cost 8-14 ms,
#: mostly redis-py encoding 3,000 keys (bench/compare.py). MemoryLimiter does not sample.
SAMPLE_SIZE = 20
#: How long `now()` extrapolates the last Redis clock reading with this process's monotonic
#: clock before it asks Redis again (seconds); every script reply renews the reading. Saves a
#: TIME round trip per routing decision. The test clock is always read afresh.
CLOCK_REUSE_SECONDS = 10.0


def read_script(name: str) -> str:
    """Text of a Lua file shipped next to this module."""
    return files("worker.limiter").joinpath(name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class _OffsetTable:
    """An offset table and the range of `now` (unix seconds) the script accepts with it."""

    valid_from: float
    valid_until: float
    pairs: list[tuple[float, int]]

    def fresh_for(self, estimate: float) -> bool:
        margin = TABLE_REBUILD_MARGIN_SECONDS
        return self.valid_from + margin <= estimate <= self.valid_until - margin

    def as_args(self) -> list[str]:
        flat = [str(part) for pair in self.pairs for part in (repr(pair[0]), pair[1])]
        return [repr(self.valid_from), repr(self.valid_until), str(len(self.pairs)), *flat]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisLimiter:
    """Caps and spacing enforced by `reserve.lua`; safe to share across threads and processes.

    A call that comes back "stale" is made again with a rebuilt UTC-offset table (when the
    limiter clock left the table's span, e.g. the test clock jumping ahead).

    Caps survive Redis losing its data: when the counters' sentinel is gone, the first
    reserve to notice takes a lock, sets the current hour's and day's counters of every
    instance from `counters` (PostgreSQL's record of the sends that spent a slot), and puts
    the sentinel back; no slot is granted before. Without `counters` (unit tests, benches)
    the counters are taken as they are.
    """

    def __init__(
        self,
        client: redis.Redis,
        zone: ZoneInfo,
        spacing: SpacingPolicy,
        *,
        test_clock_enabled: bool = False,
        rng: random.Random | None = None,
        counters: SpentCounts | None = None,
        sample_size: int = SAMPLE_SIZE,
        clock_reuse_seconds: float = CLOCK_REUSE_SECONDS,
    ) -> None:
        self._client = client
        self._sample_size = sample_size
        self._clock_reuse_seconds = clock_reuse_seconds
        self._counters = counters
        self._rebuild_script = client.register_script(read_script("rebuild.lua"))
        self._zone = zone
        self._spacing = spacing
        self._test_clock_enabled = test_clock_enabled
        self._rng = rng or random.Random()
        self._reserve_script = client.register_script(read_script("reserve.lua"))
        self._release_script = client.register_script(read_script("release.lua"))
        self._clock = RedisClock(client, test_clock_enabled=test_clock_enabled)
        self._skew = 0.0  # limiter clock minus this process's clock, seconds (last seen)
        self._seen: tuple[float, float] | None = None  # (limiter clock, monotonic) last seen
        self._table = self._build_table(time.time())

    def now(self) -> float:
        """The limiter clock, unix seconds: the test clock when enabled and set; otherwise
        the Redis server time, read at most every `clock_reuse_seconds` and advanced by this
        process's monotonic clock in between (windows are still named by the script's own
        clock; this one serves expiry, breaker cooldowns and timestamps)."""
        seen, mono = self._seen, time.monotonic()
        if self._test_clock_enabled or seen is None or mono - seen[1] > self._clock_reuse_seconds:
            value = self._clock.now()
            self._seen = (value, time.monotonic())
            return value
        return seen[0] + (mono - seen[1])

    def reserve(
        self, candidates: Sequence[Candidate], *, phone: str, strict: int = 0
    ) -> Reservation | NoCapacity:
        """Reserve a slot on the first candidate that fits; see reserve.lua for the rules."""
        if not candidates:
            return NoCapacity(now=self.now(), retry_at=math.inf, reason="no_candidates")
        head = ["reserve", str(strict), *self._spacing_args()]
        sample = self._sample(candidates, strict)
        if sample is not None:
            first = self._reserve_among(sample, phone, head)
            if isinstance(first, Reservation) or first.reason == "recipient_gap":
                return first
        return self._reserve_among(candidates, phone, head)

    def _reserve_among(
        self, candidates: Sequence[Candidate], phone: str, head: list[str]
    ) -> Reservation | NoCapacity:
        reply = self._call(candidates, keys.phone_last_send(phone), head)
        return self._reservation(reply, candidates) if reply[0] == "ok" else self._refusal(reply)

    def _sample(self, candidates: Sequence[Candidate], strict: int) -> list[Candidate] | None:
        """The strict head plus `sample_size` of the rest (in their order), or None if few."""
        if len(candidates) - strict <= self._sample_size:
            return None
        picked = sorted(self._rng.sample(range(strict, len(candidates)), self._sample_size))
        return [*candidates[:strict], *(candidates[i] for i in picked)]

    def release(self, reservation: Reservation) -> None:
        """Decrement the counters the reservation incremented (never below 0)."""
        hour = keys.hour_counter(reservation.instance, reservation.hour_window)
        day = keys.day_counter(reservation.instance, reservation.day_window)
        self._release_script(keys=[hour, day])

    def book_wake(self, retry_at: float, ttl_seconds: int) -> int:
        """INCR + EXPIRE in one transaction (one round trip); the count is the position."""
        pipe = self._client.pipeline(transaction=True)
        pipe.incr(keys.wake_bookings(retry_at))
        pipe.expire(keys.wake_bookings(retry_at), max(1, ttl_seconds))
        position, _ = pipe.execute()
        return int(position)

    def usage(self, candidates: Sequence[Candidate]) -> list[InstanceUsage]:
        """Counts of the current windows, read by the reserve script itself (one round trip)."""
        if not candidates:
            return []
        reply = self._call(candidates, keys.TEST_CLOCK, ["usage", "0", "0", "0", "0"])
        counts = [int(value) for value in reply[2:]]
        return [
            policy.usage_of(candidate, counts[2 * index], counts[2 * index + 1])
            for index, candidate in enumerate(candidates)
        ]

    def _spacing_args(self) -> list[str]:
        interval = policy.jittered_interval(self._spacing, self._rng)
        gap = self._spacing.recipient_min_gap_seconds
        return [repr(float(gap)), repr(interval), str(policy.last_send_ttl(self._spacing))]

    def _call(self, candidates: Sequence[Candidate], phone_key: str, head: list[str]) -> list[Any]:
        """Run reserve.lua; on a "stale" answer rebuild the offset table around its now, once."""
        script_keys = [
            keys.TEST_CLOCK,
            phone_key,
            *self._candidate_keys(candidates),
            keys.COUNTERS_SENTINEL,
        ]
        caps = ",".join(f"{c.hourly_cap},{c.daily_cap}" for c in candidates)
        for _ in range(3):
            table = self._current_table()
            args = [head[0], self._clock_flag(), *head[1:], *table.as_args(), caps]
            reply = [_text(part) for part in self._run(script_keys, args)]
            self._skew = float(reply[1]) - time.time()
            self._seen = (float(reply[1]), time.monotonic())
            if reply[0] == "rebuild":
                self._rebuild(float(reply[1]))
            elif reply[0] == "stale":
                self._table = self._build_table(float(reply[1]))
            else:
                return reply
        raise RuntimeError("reserve.lua kept answering 'stale' or 'rebuild'")

    def _rebuild(self, now: float) -> None:
        """Rebuild the counters of the windows holding `now` (the script's clock), once
        across workers: under a lock, and only if no one put the sentinel back meanwhile."""
        lock = self._client.lock(
            keys.lock("counters-rebuild"),
            timeout=REBUILD_LOCK_SECONDS,
            blocking_timeout=REBUILD_LOCK_SECONDS,
        )
        if not lock.acquire():
            raise RuntimeError("another worker held the counters' rebuild lock too long")
        try:
            if self._client.exists(keys.COUNTERS_SENTINEL):
                return
            self._write_counters(now)
        finally:
            lock.release()

    def _write_counters(self, now: float) -> None:
        zone = self._zone
        started = [
            datetime.fromtimestamp(window_start(zone, now, length), UTC)
            for length in (HOUR_SECONDS, DAY_SECONDS)
        ]
        spent = dict(self._counters(*started)) if self._counters is not None else {}
        hour_window, day_window = window_ids(zone, now)
        script_keys, counts = [keys.COUNTERS_SENTINEL], []
        for name, (hour_count, day_count) in sorted(spent.items()):
            script_keys += [
                keys.hour_counter(name, hour_window),
                keys.day_counter(name, day_window),
            ]
            counts += [str(hour_count), str(day_count)]
        ttls = [
            str(math.ceil(window_end(zone, now, length) + length - now))
            for length in (HOUR_SECONDS, DAY_SECONDS)
        ]
        raised = self._rebuild_script(keys=script_keys, args=[*ttls, *counts])
        log.warning(
            "limiter counters were missing (Redis lost its data): rebuilt from PostgreSQL "
            "for %d instance(s), %s counter(s) raised",
            len(spent),
            raised,
        )

    def _run(self, script_keys: list[str], args: list[str]) -> list[Any]:
        return cast(list[Any], self._reserve_script(keys=script_keys, args=args))

    def _clock_flag(self) -> str:
        return "1" if self._test_clock_enabled else "0"

    def _current_table(self) -> _OffsetTable:
        estimate = time.time() + self._skew
        if not self._table.fresh_for(estimate):
            self._table = self._build_table(estimate)
        return self._table

    def _build_table(self, around: float) -> _OffsetTable:
        pairs = offset_table(self._zone, around, TABLE_SPAN_SECONDS)
        valid = TABLE_VALID_SECONDS
        return _OffsetTable(around - valid, around + valid, pairs)

    @staticmethod
    def _candidate_keys(candidates: Sequence[Candidate]) -> list[str]:
        return [
            key
            for c in candidates
            for key in (
                keys.hour_counter_prefix(c.name),
                keys.day_counter_prefix(c.name),
                keys.instance_last_send(c.name),
            )
        ]

    @staticmethod
    def _reservation(reply: list[str], candidates: Sequence[Candidate]) -> Reservation:
        _, now, index, hour_window, day_window, hour_count, day_count = reply
        return Reservation(
            instance=candidates[int(index) - 1].name,
            now=float(now),
            hour_window=int(hour_window),
            day_window=int(day_window),
            hour_count=int(hour_count),
            day_count=int(day_count),
        )

    @staticmethod
    def _refusal(reply: list[str]) -> NoCapacity:
        _, now, retry_at, reason = reply
        return NoCapacity(
            now=float(now), retry_at=float(retry_at), reason=cast(policy.Reason, reason)
        )
