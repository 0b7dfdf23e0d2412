"""RedisLimiter on a real Redis: the shared contract, plus expiry, concurrency, round trips."""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest
import redis

from tests.concurrency import run_on_threads
from tests.support.counting import ScriptCountingRedis
from tests.unit.test_limiter_policy import (
    SAO_PAULO,
    T0,
    Harness,
    LimiterContract,
    fill,
    refused,
    reserved,
    utc,
)
from worker import keys
from worker.clock import set_test_clock
from worker.limiter import (
    Candidate,
    Limiter,
    NoCapacity,
    RedisLimiter,
    Reservation,
    SpacingPolicy,
)

POOL = [Candidate("i5", 5, 1000), Candidate("i10", 10, 1000), Candidate("i15", 15, 1000)]


class RedisHarness:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def make(
        self,
        spacing: SpacingPolicy = SpacingPolicy(),
        zone: ZoneInfo = SAO_PAULO,
        rng: random.Random | None = None,
    ) -> Limiter:
        return RedisLimiter(self.client, zone, spacing, test_clock_enabled=True, rng=rng)

    def set_now(self, now: float) -> None:
        set_test_clock(self.client, now)


class TestRedisLimiterContract(LimiterContract):
    @pytest.fixture
    def harness(self, redis_client: redis.Redis) -> Harness:
        return RedisHarness(redis_client)


def limiter_at(client: redis.Redis, now: float, **kwargs: Any) -> RedisLimiter:
    set_test_clock(client, now)
    return RedisLimiter(client, SAO_PAULO, SpacingPolicy(), test_clock_enabled=True, **kwargs)


def test_counters_and_stamps_expire_on_their_own(redis_client: redis.Redis) -> None:
    spacing = SpacingPolicy(recipient_min_gap_seconds=30, instance_min_interval_seconds=5)
    set_test_clock(redis_client, T0)  # 15:30 UTC; hour ends 16:00, day ends 03:00 next day
    limiter = RedisLimiter(redis_client, SAO_PAULO, spacing, test_clock_enabled=True)
    slot = reserved(limiter.reserve([POOL[0]], phone="5511999990000"))
    hour_ttl = redis_client.ttl(keys.hour_counter("i5", slot.hour_window))
    day_ttl = redis_client.ttl(keys.day_counter("i5", slot.day_window))
    assert hour_ttl == pytest.approx(1800 + 3600, abs=2)
    assert day_ttl == pytest.approx(11.5 * 3600 + 86400, abs=2)
    assert 3590 < redis_client.ttl(keys.phone_last_send("5511999990000")) <= 3600
    assert 3590 < redis_client.ttl(keys.instance_last_send("i5")) <= 3600
    assert all(key.startswith(b"{zd}:") for key in redis_client.keys("*"))


def _hammer(limiter: RedisLimiter, results: list[str]) -> None:
    while True:
        answer = limiter.reserve(POOL, phone="p")
        if not isinstance(answer, Reservation):
            return
        results.append(answer.instance)


def assert_exactly_the_caps(client: redis.Redis, instances: list[str]) -> None:
    interfered = client.get(keys.TEST_CLOCK) is None
    assert not interfered, "the test clock vanished: another session flushed this Redis DB"
    assert Counter(instances) == {"i5": 5, "i10": 10, "i15": 15}
    usage = limiter_at(client, T0).usage(POOL)
    assert [(u.sent_hour, u.sent_day) for u in usage] == [(5, 5), (10, 10), (15, 15)]


def test_eight_threads_never_exceed_a_cap(redis_client: redis.Redis) -> None:
    limiter = limiter_at(redis_client, T0)
    results: list[str] = []
    run_on_threads(_hammer, [(limiter, results)] * 8)
    assert_exactly_the_caps(redis_client, results)


def _process_main(url: str, queue: Any) -> None:
    client = redis.Redis.from_url(url)
    limiter = RedisLimiter(client, SAO_PAULO, SpacingPolicy(), test_clock_enabled=True)
    results: list[str] = []
    _hammer(limiter, results)
    queue.put(results)


def test_four_processes_never_exceed_a_cap(redis_client: redis.Redis, redis_url: str) -> None:
    set_test_clock(redis_client, T0)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_process_main, args=(redis_url, queue)) for _ in range(4)]
    for process in processes:
        process.start()
    results = [name for _ in processes for name in queue.get(timeout=60)]
    for process in processes:
        process.join(timeout=60)
    assert_exactly_the_caps(redis_client, results)


def test_far_test_clock_needs_two_calls_once(redis_client: redis.Redis) -> None:
    redis_client.set(keys.COUNTERS_SENTINEL, "1")  # counters trusted: no rebuild first
    scripts = ScriptCountingRedis(connection_pool=redis_client.connection_pool)
    limiter = limiter_at(scripts, utc(2031, 1, 15, 12))
    assert reserved(limiter.reserve(POOL, phone="p")).now == utc(2031, 1, 15, 12)
    assert (scripts.round_trips, scripts.table_refreshes) == (2, 1)
    reserved(limiter.reserve(POOL, phone="p"))
    assert (scripts.round_trips, scripts.table_refreshes) == (3, 1)


class CommandCounter(redis.Connection):
    """Counts commands this client sends (other clients of the server do not interfere)."""

    sent: ClassVar[Counter[str]] = Counter()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        CommandCounter.sent[str(args[0]).upper()] += 1
        super().send_command(*args, **kwargs)


def test_one_evalsha_per_reserve_in_steady_state(redis_client: redis.Redis, redis_url: str) -> None:
    set_test_clock(redis_client, T0)
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CommandCounter)
    client = redis.Redis(connection_pool=pool)
    limiter = RedisLimiter(client, SAO_PAULO, SpacingPolicy(), test_clock_enabled=True)
    limiter.reserve(POOL, phone="p")  # loads the script (EVALSHA, NOSCRIPT, SCRIPT LOAD)
    CommandCounter.sent.clear()
    for _ in range(10):
        reserved(limiter.reserve(POOL, phone="p"))
    limiter.usage(POOL)
    assert CommandCounter.sent == {"EVALSHA": 11}
    pool.disconnect()


def test_pacing_and_gap_stamps_are_shared_between_limiters(redis_client: redis.Redis) -> None:
    spacing = SpacingPolicy(recipient_min_gap_seconds=60)
    set_test_clock(redis_client, T0)
    first = RedisLimiter(redis_client, SAO_PAULO, spacing, test_clock_enabled=True)
    second = RedisLimiter(redis_client, SAO_PAULO, spacing, test_clock_enabled=True)
    reserved(first.reserve(POOL, phone="5511999990000"))
    assert refused(second.reserve(POOL, phone="5511999990000")).reason == "recipient_gap"


def test_release_only_touches_the_reserved_windows(redis_client: redis.Redis) -> None:
    limiter = limiter_at(redis_client, T0)
    fill(limiter, POOL[0], 2)
    slot = reserved(limiter.reserve([POOL[0]], phone="p"))
    limiter.release(slot)
    assert int(redis_client.get(keys.hour_counter("i5", slot.hour_window)) or 0) == 2
    redis_client.delete(keys.hour_counter("i5", slot.hour_window))
    limiter.release(slot)  # an expired counter is not recreated at -1
    assert redis_client.get(keys.hour_counter("i5", slot.hour_window)) is None


def test_a_large_pool_is_sampled_yet_every_slot_is_used(redis_client: redis.Redis) -> None:
    """Above SAMPLE_SIZE candidates the script sees a sample first, the whole pool only
    when no sampled candidate fits: every slot of 100 cap-1 instances is still found."""
    limiter = limiter_at(redis_client, T0, rng=random.Random(3))
    pool = [Candidate(f"n{i:03d}", 1, 1000) for i in range(100)]
    used = {reserved(limiter.reserve(pool, phone=f"p{i}")).instance for i in range(100)}
    assert len(used) == 100
    refused = limiter.reserve(pool, phone="p-last")
    assert isinstance(refused, NoCapacity) and refused.reason == "caps"


def test_the_redis_clock_is_read_once_then_extrapolated(redis_url: str) -> None:
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CommandCounter)
    client = redis.Redis(connection_pool=pool)
    limiter = RedisLimiter(client, SAO_PAULO, SpacingPolicy())
    first = limiter.now()
    CommandCounter.sent.clear()
    later = [limiter.now() for _ in range(5)]
    assert CommandCounter.sent == {}  # no TIME within CLOCK_REUSE_SECONDS
    assert all(t >= first for t in later)
    pool.disconnect()
