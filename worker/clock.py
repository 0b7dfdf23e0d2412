"""Clocks. Pure code takes `now` (unix seconds) as a parameter; only these edges read time.

The limiter's windows are named by the Redis server's clock, so every worker agrees. For
tests and benchmarks, with TEST_CLOCK_ENABLED, a Redis key (`keys.TEST_CLOCK`) overrides
that clock across every process that shares the Redis database.
"""

from __future__ import annotations

import time
from typing import Protocol, cast

import redis

from worker import keys


class Clock(Protocol):
    def now(self) -> float:
        """Current time, unix seconds."""
        ...


class SystemClock:
    """This process's wall clock."""

    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock a test sets by hand."""

    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


class RedisClock:
    """The Redis server's clock, or the shared test clock when enabled."""

    def __init__(self, client: redis.Redis, *, test_clock_enabled: bool = False) -> None:
        self._client = client
        self._test_clock_enabled = test_clock_enabled

    def now(self) -> float:
        if self._test_clock_enabled:
            value = cast(bytes | None, self._client.get(keys.TEST_CLOCK))
            if value is not None:
                return float(value)
        seconds, micros = cast(tuple[int, int], self._client.time())
        return float(seconds) + float(micros) / 1_000_000


def set_test_clock(client: redis.Redis, now: float) -> None:
    """Move the shared test clock to `now` (unix seconds). Tests and benchmarks only."""
    client.set(keys.TEST_CLOCK, repr(float(now)))


def clear_test_clock(client: redis.Redis) -> None:
    client.delete(keys.TEST_CLOCK)
