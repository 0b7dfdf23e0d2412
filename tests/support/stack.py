"""An in-process delivery stack on real PostgreSQL and Redis, Evolution faked in process.

`build_stack(settings)` opens the production `Resources` with a `FakeEvolution` behind the
Evolution client, and wires an `Intake`, a `Dispatcher` and a `Sweeper` around them with a
`HeldScheduler` in place of Celery's countdown tasks. What the benchmarks read is counted
by wrappers around the production objects (tests/support/counting.py): the limiter's
script calls (`Stack.scripts`), routing decisions (`Stack.limiter`), SQL statements
(`Stack.sql`) and Redis round trips (`counting.REDIS_ROUND_TRIPS`).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis

from config import Settings
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.support.counting import CountingLimiter, ScriptCountingRedis, SqlCounter, count_redis
from tests.support.evolution import FakeEvolution
from worker.clock import set_test_clock
from worker.delivery import Delivered, Dispatcher
from worker.evolution import EvolutionClient
from worker.intake import Intake
from worker.limiter import RedisLimiter
from worker.resources import (
    ROUTING_SNAPSHOT_SECONDS,
    Resources,
    build_resources,
    spacing_policy,
)
from worker.sweeper import Sweeper


@dataclass
class HeldScheduler:
    """Deliveries scheduled with a countdown (Celery's countdown tasks in production):
    recorded in `calls`, and held until `pop_due` is asked at or after their due time."""

    clock: Callable[[], float]
    calls: list[tuple[uuid.UUID, float]] = field(default_factory=list)
    countdowns: Counter[str] = field(default_factory=Counter)
    _heap: list[tuple[float, int, uuid.UUID]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def schedule(self, message_id: uuid.UUID, countdown_seconds: float) -> None:
        kind = "now" if countdown_seconds <= 0 else "countdown"
        with self._lock:
            self.calls.append((message_id, countdown_seconds))
            self.countdowns[kind] += 1
            due = self.clock() + max(0.0, countdown_seconds)
            heapq.heappush(self._heap, (due, next(self._seq), message_id))

    def pop_due(self, now: float) -> list[uuid.UUID]:
        """The held deliveries due at `now` (unix seconds), earliest first; forgotten here."""
        with self._lock:
            due = []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[2])
            return due

    def next_due(self) -> float | None:
        with self._lock:
            return self._heap[0][0] if self._heap else None


@dataclass
class Stack:
    settings: Settings
    res: Resources
    evolution: FakeEvolution
    scheduler: HeldScheduler
    scripts: ScriptCountingRedis  # the limiter's client: its script calls, counted
    limiter: CountingLimiter  # what the dispatcher reserves through: decisions, counted
    sql: SqlCounter
    dispatcher: Dispatcher
    intake: Intake
    sweeper: Sweeper
    policies: bool = True

    @property
    def redis(self) -> redis.Redis:
        return self.res.redis

    def add_instance(
        self,
        name: str,
        hourly: int = 100,
        daily: int = 1000,
        status: InstanceStatus = InstanceStatus.CONNECTED,
    ) -> None:
        self.res.instances.add(name, "5511900000000", hourly, daily, status=status)

    def add_instances(self, names: Iterable[str], hourly: int, daily: int) -> None:
        for name in names:
            self.add_instance(name, hourly, daily)

    def set_clock(self, now: float) -> None:
        """The shared test clock (TEST_CLOCK_ENABLED) and the fake's stamps, unix seconds."""
        set_test_clock(self.res.redis, now)
        self.evolution.now = now

    def accept(self, phone: str, text: str = "oi", **fields: Any) -> uuid.UUID:
        return self.intake.accept({"phone": phone, "text": text, **fields}).id

    def forget_instances(self) -> None:
        """After instances changed behind the store's back (raw SQL): route on fresh reads."""
        self.use_instances(
            InstanceStore(self.res.sessions, snapshot_seconds=ROUTING_SNAPSHOT_SECONDS)
        )

    def use_instances(self, store: InstanceStore) -> None:
        """Route through `store` from now on (a fresh dispatcher around it)."""
        self.res.instances = store
        self.dispatcher = _dispatcher(
            self.res, self.limiter, self.scheduler, policies=self.policies
        )

    def use_limiter(self, **knobs: Any) -> None:
        """Reserve through a limiter built with `knobs` (RedisLimiter's keyword arguments,
        e.g. `sample_size`, `clock_reuse_seconds`) from now on, counted as before."""
        self.res.limiter = _limiter(self.settings, self.scripts, self.res, **knobs)
        self.limiter = CountingLimiter(self.res.limiter)
        self.dispatcher = _dispatcher(
            self.res, self.limiter, self.scheduler, policies=self.policies
        )

    def deliver_all(self, ids: list[uuid.UUID], threads: int) -> list[Delivered]:
        if threads <= 1:
            return [self.dispatcher.deliver(i) for i in ids]
        with ThreadPoolExecutor(threads, thread_name_prefix="deliver") as pool:
            return list(pool.map(self.dispatcher.deliver, ids))

    def close(self) -> None:
        self.res.close()


def build_stack(
    settings: Settings,
    *,
    clock: Callable[[], float] | None = None,
    policies: bool = True,
) -> Stack:
    """A stack on `settings`' database and Redis. `clock` (unix seconds) stamps the fake's
    sends and dates held countdowns; without it both follow `Stack.set_clock`.

    `policies=False`: the dispatcher runs without the pause board, the sending policy and
    the not-on-WhatsApp memory (the bench's in-process figures are taken so).
    """
    fake = FakeEvolution(clock)
    client = EvolutionClient("http://evolution.test", "key", transport=httpx.MockTransport(fake))
    res = build_resources(settings, evolution=client)
    count_redis(res.redis)
    # A limiter runs its scripts through the client it was built on: the one
    # build_resources made is replaced by the same limiter on a counting client (same pool).
    scripts = ScriptCountingRedis(connection_pool=res.redis.connection_pool)
    res.limiter = _limiter(settings, scripts, res)
    scheduler = HeldScheduler(clock or fake.time)
    limiter = CountingLimiter(res.limiter)
    return Stack(
        settings=settings,
        res=res,
        evolution=fake,
        scheduler=scheduler,
        scripts=scripts,
        limiter=limiter,
        sql=SqlCounter(sessions=res.engine, statements=res.statements),
        dispatcher=_dispatcher(res, limiter, scheduler, policies=policies),
        intake=Intake(settings, res.messages, res.limiter),
        sweeper=Sweeper(settings, res.sweeps, res.limiter, res.redis, scheduler),
        policies=policies,
    )


def _limiter(
    settings: Settings, scripts: ScriptCountingRedis, res: Resources, **knobs: Any
) -> RedisLimiter:
    return RedisLimiter(
        scripts,
        settings.zone,
        spacing_policy(settings),
        test_clock_enabled=settings.test_clock_enabled,
        counters=res.messages.spent_since,
        **knobs,
    )


def _dispatcher(
    res: Resources, limiter: Any, scheduler: HeldScheduler, *, policies: bool
) -> Dispatcher:
    extras: dict[str, Any] = (
        {"pauses": res.pauses, "policy": res.policy, "memory": res.not_on_whatsapp}
        if policies
        else {}
    )
    return Dispatcher(
        res.settings, res.messages, res.instances, limiter, res.evolution, scheduler, **extras
    )


def phone(i: int) -> str:
    """A distinct valid Brazilian mobile number per index (0..9999)."""
    return f"+55 11 9{i:04d}-{i:04d}"
