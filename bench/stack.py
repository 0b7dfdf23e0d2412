"""An in-process delivery stack on the bench services, Evolution faked by httpx.MockTransport.

The same wiring as `tests/integration/conftest.py` (which the bench does not import: it is
pytest-only): real PostgreSQL, real Redis and `RedisLimiter`, a `Dispatcher` and a
`Sweeper`, and a `Scheduler` that holds requeued deliveries until the bench runs them.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.counting import CountingLimiter, SqlCounter, count_redis
from config import Settings
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from worker.delivery import Delivered, Dispatcher
from worker.evolution import EvolutionClient
from worker.intake import Intake
from worker.resources import ROUTING_SNAPSHOT_SECONDS, Resources, build_resources
from worker.simulator.contract import sent_text_body
from worker.sweeper import Sweeper


class FakeEvolution:
    """Answers every sendText 201; remembers (instance, clock) of each accepted send."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.sends: list[tuple[str, float]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        instance = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content)
        with self._lock:
            message_id = f"3EB0{next(self._ids):016X}"
            self.sends.append((instance, self._clock()))
        return httpx.Response(
            201, json=sent_text_body(body["number"], body["text"], message_id, self._clock())
        )


@dataclass
class HeldScheduler:
    """Deliveries scheduled with a countdown, held until the bench's clock reaches them."""

    clock: Callable[[], float]
    _heap: list[tuple[float, int, uuid.UUID]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    countdowns: Counter[str] = field(default_factory=Counter)

    def schedule(self, message_id: uuid.UUID, countdown_seconds: float) -> None:
        kind = "now" if countdown_seconds <= 0 else "countdown"
        with self._lock:
            self.countdowns[kind] += 1
            due = self.clock() + max(0.0, countdown_seconds)
            heapq.heappush(self._heap, (due, next(self._seq), message_id))

    def pop_due(self, now: float) -> list[uuid.UUID]:
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
    limiter: CountingLimiter
    dispatcher: Dispatcher
    intake: Intake
    sweeper: Sweeper
    sql: SqlCounter

    def add_instances(self, names: Iterable[str], hourly: int, daily: int) -> None:
        for name in names:
            self.res.instances.add(
                name, "5511900000000", hourly, daily, status=InstanceStatus.CONNECTED
            )

    def forget_instances(self) -> None:
        """After instances changed behind the store's back (bench SQL): route on fresh reads."""
        self.use_instances(
            InstanceStore(self.res.sessions, snapshot_seconds=ROUTING_SNAPSHOT_SECONDS)
        )

    def use_instances(self, store: InstanceStore) -> None:
        """Route through `store` from now on (a fresh dispatcher around it)."""
        self.res.instances = store
        self.dispatcher = Dispatcher(
            self.settings,
            self.res.messages,
            store,
            self.limiter,  # type: ignore[arg-type]
            self.res.evolution,
            self.scheduler,
        )

    def deliver_all(self, ids: list[uuid.UUID], threads: int) -> list[Delivered]:
        if threads <= 1:
            return [self.dispatcher.deliver(i) for i in ids]
        with ThreadPoolExecutor(threads, thread_name_prefix="deliver") as pool:
            return list(pool.map(self.dispatcher.deliver, ids))

    def close(self) -> None:
        self.res.close()


def build_stack(settings: Settings, clock: Callable[[], float]) -> Stack:
    """A delivery stack whose Redis client counts round trips and whose engine counts SQL."""
    fake = FakeEvolution(clock)
    client = EvolutionClient("http://evolution.bench", "key", transport=httpx.MockTransport(fake))
    res = build_resources(settings, evolution=client)
    count_redis(res.redis)
    scheduler = HeldScheduler(clock)
    limiter = CountingLimiter(res.limiter)
    return Stack(
        settings=settings,
        res=res,
        evolution=fake,
        scheduler=scheduler,
        limiter=limiter,
        dispatcher=Dispatcher(
            settings,
            res.messages,
            res.instances,
            limiter,  # type: ignore[arg-type]
            client,
            scheduler,
        ),
        intake=Intake(settings, res.messages, res.limiter),
        sweeper=Sweeper(settings, res.sweeps, res.limiter, res.redis, scheduler),
        sql=SqlCounter(sessions=res.engine, statements=res.statements),
    )


def phone(i: int) -> str:
    """A distinct valid Brazilian mobile number per index (up to 10^8)."""
    return f"+55 11 9{i // 10_000:04d}-{i % 10_000:04d}"


def accept_many(stack: Stack, count: int, contacts: int, threads: int = 8) -> list[uuid.UUID]:
    """`count` messages round-robin over `contacts` contacts, accepted through the intake."""

    def accept(n: int) -> uuid.UUID:
        c = n % contacts
        return stack.intake.accept(
            {"phone": phone(c), "text": f"bench message {n}", "contact_id": f"doctor-{c}"}
        ).id

    with ThreadPoolExecutor(threads, thread_name_prefix="accept") as pool:
        return list(pool.map(accept, range(count)))


def as_dict(counter: Counter[Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in counter.items()}
