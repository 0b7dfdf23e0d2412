"""A delivery stack on real PostgreSQL and Redis, with Evolution faked by httpx.MockTransport."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis

from config import Settings
from models.enums import InstanceStatus
from worker.clock import set_test_clock
from worker.delivery import Dispatcher
from worker.evolution import EvolutionClient
from worker.intake import Intake
from worker.resources import Resources, build_resources, install
from worker.simulator.contract import sent_text_body
from worker.sweeper import Sweeper

#: 2026-11-23 10:00:00 in São Paulo (13:00 UTC): a Monday morning.
T0 = 1_795_438_800.0

Handler = Callable[[httpx.Request], httpx.Response]


class FakeEvolution:
    """Answers sendText like Evolution does, and findMessages from what it sent; tests swap
    `behaviour` per instance (for sendText) and may turn `lookups` off (route missing).
    `now` stamps what it sends (unix seconds; the stack's clock moves it)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.behaviour: dict[str, Handler] = {}
        self.lookups = True
        self.now = T0
        self._ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        instance = request.url.path.rsplit("/", 1)[-1]
        if request.url.path.startswith("/chat/findMessages/"):
            return self._find(instance, json.loads(request.content))
        if instance in self.behaviour:
            return self.behaviour[instance](request)
        return self.deliver(request)

    def deliver(self, request: httpx.Request) -> httpx.Response:
        """Send the message (record it) and answer 201 as Evolution does."""
        instance = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content)
        message_id = f"3EB0{next(self._ids):016X}"
        self.sent.append({"instance": instance, **body, "id": message_id, "at": self.now})
        return httpx.Response(
            201, json=sent_text_body(body["number"], body["text"], message_id, self.now)
        )

    def deliver_then(self, failure: Exception | httpx.Response) -> Handler:
        """A behaviour: the message goes out, then the answer is `failure` (raised, or
        answered when it is a response)."""

        def handler(request: httpx.Request) -> httpx.Response:
            self.deliver(request)
            if isinstance(failure, httpx.Response):
                return failure
            raise failure

        return handler

    def _find(self, instance: str, query: dict[str, Any]) -> httpx.Response:
        if not self.lookups:
            return httpx.Response(404, text=f"Cannot POST /chat/findMessages/{instance}")
        jid = query.get("where", {}).get("key", {}).get("remoteJid")
        records = [
            {
                "key": {
                    "id": r["id"],
                    "fromMe": True,
                    "remoteJid": f"{r['number']}@s.whatsapp.net",
                },
                "message": {"conversation": r["text"]},
                "messageTimestamp": int(r["at"]),
            }
            for r in reversed(self.sent)
            if r["instance"] == instance and jid in (None, f"{r['number']}@s.whatsapp.net")
        ]
        page = records[: int(query.get("offset", 50))]
        listing = {"total": len(records), "pages": 1, "currentPage": 1, "records": page}
        return httpx.Response(200, json={"messages": listing})

    def by_instance(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for record in self.sent:
            out.setdefault(record["instance"], []).append(record["number"])
        return out


@dataclass
class RecordingScheduler:
    calls: list[tuple[uuid.UUID, float]] = field(default_factory=list)

    def schedule(self, message_id: uuid.UUID, countdown_seconds: float) -> None:
        self.calls.append((message_id, countdown_seconds))


@dataclass
class Stack:
    res: Resources
    evolution: FakeEvolution
    scheduler: RecordingScheduler
    dispatcher: Dispatcher
    intake: Intake
    sweeper: Sweeper
    redis: redis.Redis[bytes]

    def add_instance(
        self,
        name: str,
        hourly: int = 100,
        daily: int = 1000,
        status: InstanceStatus = InstanceStatus.CONNECTED,
    ) -> None:
        self.res.instances.add(name, "5511900000000", hourly, daily, status=status)

    def set_clock(self, now: float) -> None:
        set_test_clock(self.redis, now)
        self.evolution.now = now

    def accept(self, phone: str, text: str = "oi", **fields: Any) -> uuid.UUID:
        return self.intake.accept({"phone": phone, "text": text, **fields}).id


def phone(i: int) -> str:
    """A distinct valid Brazilian mobile number per index."""
    return f"+55 11 9{i:04d}-{i:04d}"


@pytest.fixture
def make_stack(
    settings: Settings, redis_client: redis.Redis[bytes]
) -> Iterator[Callable[..., Stack]]:
    built: list[Resources] = []

    def make(**overrides: Any) -> Stack:
        s = settings.model_copy(update={"requeue_jitter_seconds": 0.0, **overrides})
        fake = FakeEvolution()
        client = EvolutionClient(
            "http://evolution.test", "key", transport=httpx.MockTransport(fake)
        )
        res = build_resources(s, evolution=client)
        built.append(res)
        scheduler = RecordingScheduler()
        set_test_clock(redis_client, T0)
        return Stack(
            res=res,
            evolution=fake,
            scheduler=scheduler,
            dispatcher=Dispatcher(
                s,
                res.messages,
                res.instances,
                res.limiter,
                client,
                scheduler,
                pauses=res.pauses,
                policy=res.policy,
                memory=res.not_on_whatsapp,
            ),
            intake=Intake(s, res.messages, res.limiter),
            sweeper=Sweeper(s, res.sweeps, res.limiter, res.redis, scheduler),
            redis=redis_client,
        )

    yield make
    for res in built:
        res.close()
    install(None)


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()
