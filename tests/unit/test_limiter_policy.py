"""The limiter's pure policy, and the behavioural contract every limiter backend must meet.

`LimiterContract` is run here on `MemoryLimiter` (FixedClock) and in
tests/integration/test_limiter_redis.py on `RedisLimiter` (real Redis, shared test clock).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest

from worker.clock import FixedClock
from worker.limiter import (
    Candidate,
    Limiter,
    MemoryLimiter,
    NoCapacity,
    Reservation,
    SpacingPolicy,
    policy,
)
from worker.limiter.policy import CandidateState

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NEW_YORK = ZoneInfo("America/New_York")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Unix seconds of a UTC wall-clock time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


T0 = utc(2025, 6, 10, 15, 30)  # 12:30 in São Paulo
A, B, C = (Candidate("a", 10, 100), Candidate("b", 10, 100), Candidate("c", 10, 100))


# --- pure policy ---------------------------------------------------------------------------


def test_try_order_strict_head_then_least_loaded_ties_by_given_order() -> None:
    assert policy.try_order([0.5, 0.1, 0.3, 0.1], strict=0) == [1, 3, 2, 0]
    assert policy.try_order([0.5, 0.1, 0.3, 0.1], strict=1) == [0, 1, 3, 2]
    assert policy.try_order([0.2], strict=1) == [0]


def test_load_is_the_busier_window_and_zero_cap_is_full() -> None:
    assert policy.load(CandidateState(2, 10, 30, 100)) == 0.3
    assert policy.load(CandidateState(0, 0, 0, 100)) == 1.0
    assert policy.usage_of(Candidate("x", 3, 100), 1, 1).load_pct == 33.3


@pytest.mark.parametrize(
    ("hour", "hourly_cap", "day", "daily_cap", "pct"),
    [(3, 10, 3, 100, 30.0), (1, 10, 90, 100, 90.0), (1, 3, 0, 100, 33.3), (0, 0, 0, 100, 100.0)],
)
def test_load_pct_is_the_busier_window_in_percent(
    hour: int, hourly_cap: int, day: int, daily_cap: int, pct: float
) -> None:
    """The one load formula the dashboard, `/metrics` and the capacity alert read."""
    assert policy.usage_of(Candidate("x", hourly_cap, daily_cap), hour, day).load_pct == pct


def test_free_at_daily_beats_hourly_and_pacing_can_bind() -> None:
    full_both = CandidateState(5, 5, 9, 9)
    assert policy.free_at(full_both, now=0, interval=0, hour_end=10, day_end=99) == (99, "caps")
    paced = CandidateState(0, 5, 0, 9, last_send=-1.0)
    assert policy.free_at(paced, now=0, interval=4, hour_end=10, day_end=99) == (3, "pacing")


def test_jittered_interval_and_ttl() -> None:
    spacing = SpacingPolicy(instance_min_interval_seconds=10, instance_interval_jitter_seconds=5)
    assert policy.jittered_interval(spacing, random.Random(1)) == 10 + random.Random(1).uniform(
        0, 5
    )
    assert policy.last_send_ttl(spacing) == 3600
    assert policy.last_send_ttl(SpacingPolicy(recipient_min_gap_seconds=7200.5)) == 7201


# --- the contract ---------------------------------------------------------------------------


class Harness(Protocol):
    def make(
        self,
        spacing: SpacingPolicy = ...,
        zone: ZoneInfo = ...,
        rng: random.Random | None = ...,
    ) -> Limiter: ...

    def set_now(self, now: float) -> None: ...


def reserved(result: Reservation | NoCapacity) -> Reservation:
    assert isinstance(result, Reservation), result
    return result


def refused(result: Reservation | NoCapacity) -> NoCapacity:
    assert isinstance(result, NoCapacity), result
    return result


def fill(limiter: Limiter, candidate: Candidate, count: int) -> None:
    for _ in range(count):
        assert reserved(limiter.reserve([candidate], phone="fill")).instance == candidate.name


class LimiterContract:
    """Behaviour shared by every backend. Subclasses provide the `harness` fixture."""

    def test_hourly_cap_moves_on_then_refuses_until_the_hour_ends(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        a, b = Candidate("a", 2, 100), Candidate("b", 2, 100)
        names = [reserved(limiter.reserve([a, b], phone="p", strict=1)).instance for _ in "1234"]
        assert names == ["a", "a", "b", "b"]
        answer = refused(limiter.reserve([a, b], phone="p", strict=1))
        assert (answer.reason, answer.retry_at, answer.now) == ("caps", utc(2025, 6, 10, 16), T0)

    def test_daily_cap_binding_retries_at_local_midnight(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        daily = Candidate("a", 10, 2)
        fill(limiter, daily, 2)
        answer = refused(limiter.reserve([daily], phone="p"))
        assert answer.retry_at == utc(2025, 6, 11, 3)  # 00:00 in São Paulo

    def test_retry_at_is_the_earliest_over_candidates(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        day_full, hour_full = Candidate("d", 10, 1), Candidate("h", 1, 10)
        fill(limiter, day_full, 1)
        fill(limiter, hour_full, 1)
        answer = refused(limiter.reserve([day_full, hour_full], phone="p"))
        assert answer.retry_at == utc(2025, 6, 10, 16)

    def test_counters_are_separate_per_instance(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        fill(limiter, A, 3)
        fill(limiter, B, 1)
        usage = {u.name: (u.sent_hour, u.sent_day) for u in limiter.usage([A, B, C])}
        assert usage == {"a": (3, 3), "b": (1, 1), "c": (0, 0)}

    def test_hour_and_day_boundaries_reset_counters(self, harness: Harness) -> None:
        harness.set_now(utc(2025, 6, 11, 2, 30))  # 23:30 local
        limiter = harness.make()
        one_per_hour = Candidate("a", 1, 2)
        fill(limiter, one_per_hour, 1)
        harness.set_now(utc(2025, 6, 11, 2, 59, 59))
        assert refused(limiter.reserve([one_per_hour], phone="p")).retry_at == utc(2025, 6, 11, 3)
        harness.set_now(utc(2025, 6, 11, 3))  # local midnight: new hour and new day
        slot = reserved(limiter.reserve([one_per_hour], phone="p"))
        assert (slot.hour_count, slot.day_count) == (1, 1)
        harness.set_now(utc(2025, 6, 11, 4))  # new hour, same day
        slot = reserved(limiter.reserve([one_per_hour], phone="p"))
        assert (slot.hour_count, slot.day_count) == (1, 2)

    def test_release_returns_the_slot_and_never_goes_below_zero(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        single = Candidate("a", 1, 10)
        slot = reserved(limiter.reserve([single], phone="p"))
        refused(limiter.reserve([single], phone="p"))
        limiter.release(slot)
        again = reserved(limiter.reserve([single], phone="p"))
        assert (again.hour_count, again.day_count) == (1, 1)
        limiter.release(again)
        limiter.release(again)
        assert limiter.usage([single])[0].sent_hour == 0

    def test_release_after_rollover_leaves_the_new_window_alone(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        old = reserved(limiter.reserve([A], phone="p"))
        harness.set_now(T0 + 3600)
        reserved(limiter.reserve([A], phone="p"))
        limiter.release(old)
        usage = limiter.usage([A])[0]
        assert (usage.sent_hour, usage.sent_day) == (1, 1)

    def test_new_contact_lands_on_the_least_loaded(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        small, big = Candidate("small", 10, 100), Candidate("big", 100, 1000)
        fill(limiter, small, 2)  # 20 %
        fill(limiter, big, 10)  # 10 %
        assert reserved(limiter.reserve([small, big], phone="p")).instance == "big"
        assert reserved(limiter.reserve([small, big], phone="p", strict=1)).instance == "small"

    def test_ties_keep_the_given_order(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        assert reserved(limiter.reserve([C, A, B], phone="p")).instance == "c"
        assert reserved(limiter.reserve([C, A, B], phone="p")).instance == "a"

    def test_recipient_gap_is_global_across_instances(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make(SpacingPolicy(recipient_min_gap_seconds=60))
        reserved(limiter.reserve([A], phone="5511999990000"))
        harness.set_now(T0 + 10)
        answer = refused(limiter.reserve([B], phone="5511999990000"))
        assert (answer.reason, answer.retry_at) == ("recipient_gap", T0 + 60)
        assert reserved(limiter.reserve([B], phone="5511888880000")).instance == "b"
        harness.set_now(T0 + 60)
        reserved(limiter.reserve([B], phone="5511999990000"))

    def test_pacing_with_seeded_jitter(self, harness: Harness) -> None:
        spacing = SpacingPolicy(
            instance_min_interval_seconds=10, instance_interval_jitter_seconds=5
        )
        draws = random.Random(7)
        harness.set_now(T0)
        limiter = harness.make(spacing, rng=random.Random(7))
        reserved(limiter.reserve([A], phone="p1"))
        draws.uniform(0, 5)
        harness.set_now(T0 + 1)
        answer = refused(limiter.reserve([A], phone="p2"))
        assert answer.reason == "pacing"
        assert answer.retry_at == pytest.approx(T0 + 10 + draws.uniform(0, 5), abs=1e-5)
        assert reserved(limiter.reserve([A, B], phone="p2", strict=1)).instance == "b"

    def test_new_york_dst_days_are_23_and_25_hours(self, harness: Harness) -> None:
        for now, midnight in [
            (utc(2024, 3, 10, 16), utc(2024, 3, 11, 4)),
            (utc(2024, 11, 3, 16), utc(2024, 11, 4, 5)),
        ]:
            harness.set_now(now)
            limiter = harness.make(zone=NEW_YORK)
            once = Candidate(f"ny{now}", 10, 1)
            fill(limiter, once, 1)
            assert refused(limiter.reserve([once], phone="p")).retry_at == midnight

    def test_spring_forward_hour_ends_at_the_jump(self, harness: Harness) -> None:
        harness.set_now(utc(2024, 3, 10, 6, 30))  # 01:30 EST
        limiter = harness.make(zone=NEW_YORK)
        once = Candidate("a", 1, 10)
        fill(limiter, once, 1)
        assert refused(limiter.reserve([once], phone="p")).retry_at == utc(2024, 3, 10, 7)

    def test_usage_reports_load_and_capacity(self, harness: Harness) -> None:
        harness.set_now(T0)
        limiter = harness.make()
        three = Candidate("a", 3, 100)
        fill(limiter, three, 1)
        first = limiter.usage([three])[0]
        assert (first.load_pct, first.has_capacity) == (33.3, True)
        fill(limiter, three, 2)
        full = limiter.usage([three])[0]
        assert (full.load_pct, full.has_capacity, full.hourly_cap) == (100.0, False, 3)

    def test_no_candidates(self, harness: Harness) -> None:
        harness.set_now(T0)
        answer = refused(harness.make().reserve([], phone="p"))
        assert (answer.reason, answer.retry_at, answer.now) == ("no_candidates", math.inf, T0)


class MemoryHarness:
    def __init__(self) -> None:
        self.clock = FixedClock(T0)

    def make(
        self,
        spacing: SpacingPolicy = SpacingPolicy(),
        zone: ZoneInfo = SAO_PAULO,
        rng: random.Random | None = None,
    ) -> Limiter:
        return MemoryLimiter(self.clock, zone, spacing, rng=rng)

    def set_now(self, now: float) -> None:
        self.clock.value = now


class TestMemoryLimiterContract(LimiterContract):
    @pytest.fixture
    def harness(self) -> Harness:
        return MemoryHarness()
