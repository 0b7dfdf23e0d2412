"""Seeded data for the status API tests: real PostgreSQL, real Redis counters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from fastapi import FastAPI

from config import Settings
from models.alert_store import AlertStore
from models.enums import AlertKind, AlertSeverity, Channel, InstanceStatus
from models.message_store import NewMessage
from models.views import AlertText
from worker.api import create_app, deps_from_resources
from worker.clock import set_test_clock
from worker.limiter import Candidate, Reservation
from worker.resources import Resources, build_resources

#: 2026-11-23 10:00:00 in São Paulo (13:00 UTC).
T0 = 1_795_438_800.0
NOW = datetime.fromtimestamp(T0, tz=UTC)


@dataclass
class Seeded:
    res: Resources
    app: FastAPI
    message_ids: list[uuid.UUID]


def open_resources(settings: Settings, client: redis.Redis) -> Resources:
    set_test_clock(client, T0)
    return build_resources(settings)


def reserve(res: Resources, name: str, hourly: int, daily: int, count: int) -> None:
    """Count `count` sends on `name` in the limiter, as routing does."""
    for i in range(count):
        slot = res.limiter.reserve([Candidate(name, hourly, daily)], phone=f"55119{i:08d}")
        assert isinstance(slot, Reservation), slot


def sent_message(res: Resources, instance: str, contact: str, at: datetime) -> uuid.UUID:
    """A message recorded, claimed on `instance` and marked sent at `at`."""
    new = NewMessage(
        id=uuid.uuid4(),
        contact_id=contact,
        phone="5511999998888",
        text="oi",
        content_hash=uuid.uuid4().hex,
        idempotency_key=None,
        expires_at=at + timedelta(days=1),
        created_at=at - timedelta(seconds=5),
    )
    res.messages.accept(new)
    res.messages.claim(new.id, instance, contact_id=contact, seen_preference=None, now=at)
    assert res.messages.mark_sent(new.id, "3EB0TEST", at)
    return new.id


def seed_pool(res: Resources) -> list[uuid.UUID]:
    """inst-a and inst-b connected, inst-c banned, inst-d disconnected; sends on inst-a."""
    store = res.instances
    store.add("inst-a", "5511900000001", 10, 100, status=InstanceStatus.CONNECTED)
    store.add("inst-b", "5511900000002", 20, 200, status=InstanceStatus.CONNECTED)
    store.add("inst-c", "5511900000003", 30, 300, status=InstanceStatus.BANNED)
    store.add("inst-d", "5511900000004", 40, 400, status=InstanceStatus.DISCONNECTED)
    reserve(res, "inst-a", 10, 100, 3)
    return [
        sent_message(res, "inst-a", "doctor-1", NOW - timedelta(hours=2, minutes=10)),
        sent_message(res, "inst-a", "doctor-2", NOW - timedelta(minutes=20)),
    ]


def open_alert(res: Resources) -> None:
    AlertStore(res.sessions).open(
        AlertKind.INSTANCE_BANNED,
        "inst-c",
        AlertSeverity.CRITICAL,
        AlertText("Instance inst-c BANNED", "inst-c was banned; contacts are migrating."),
        now=NOW,
        channels=[Channel.SLACK],
    )


def seeded_app(res: Resources) -> Seeded:
    ids = seed_pool(res)
    open_alert(res)
    return Seeded(res, create_app(deps_from_resources(res)), ids)
