"""`GET /messages`, `GET /messages/{id}` and its timeline on real PostgreSQL: the keys of the
interface, masked phones, filters, keyset paging, and each recorded step of a message."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text

from config import Settings
from models.message_store import NewMessage
from tests.integration.api_support import NOW, Seeded, open_resources, seeded_app
from worker.resources import Resources

KEYS = {
    "id",
    "state",
    "instance",
    "contact_id",
    "phone",
    "campaign",
    "provider_message_id",
    "receipt",
    "created_at",
    "sent_at",
    "delivered_at",
    "read_at",
    "not_before",
    "attempts",
    "requeues",
    "last_error",
}


@pytest.fixture
def seeded(settings: Settings, redis_client: redis.Redis) -> Iterator[Seeded]:
    res = open_resources(settings, redis_client)
    try:
        yield seeded_app(res)
    finally:
        res.close()


@pytest.fixture
def client(seeded: Seeded) -> TestClient:
    return TestClient(seeded.app)


def record(
    res: Resources, contact: str, created_offset_s: int, campaign: str | None = None
) -> uuid.UUID:
    """A queued message created `created_offset_s` seconds after NOW, optionally in a campaign."""
    new = NewMessage(
        id=uuid.uuid4(),
        contact_id=contact,
        phone="5511988887777",
        text="oi",
        content_hash=uuid.uuid4().hex,
        idempotency_key=None,
        expires_at=NOW + timedelta(days=1),
        created_at=NOW + timedelta(seconds=created_offset_s),
    )
    res.messages.accept(new)
    if campaign is not None:
        with res.engine.begin() as conn:
            conn.execute(
                text("UPDATE messages SET campaign = :c WHERE id = :id"),
                {"c": campaign, "id": new.id},
            )
    return new.id


def test_one_message_has_exactly_the_interface_keys(seeded: Seeded, client: TestClient) -> None:
    message_id = seeded.message_ids[0]
    body = client.get(f"/messages/{message_id}").json()
    assert set(body) == KEYS
    assert body["id"] == str(message_id)
    assert body["state"] == "sent" and body["instance"] == "inst-a"
    assert body["phone"] == "5511*******88"  # masked
    assert body["contact_id"] == "doctor-1"
    assert body["provider_message_id"] == "3EB0TEST"
    assert body["attempts"] == 1 and body["receipt"] is None
    assert client.get(f"/messages/{uuid.uuid4()}").status_code == 404
    assert client.get("/messages/not-a-uuid").status_code == 422


def test_filters_and_newest_first(seeded: Seeded, client: TestClient) -> None:
    res = seeded.res
    a = record(res, "doctor-3", 1, campaign="black-friday")
    b = record(res, "doctor-3", 2)
    everything = client.get("/messages").json()
    ids = [m["id"] for m in everything["messages"]]
    assert ids[:2] == [str(b), str(a)] and len(ids) == 4
    assert everything["next_before"] is None
    by_campaign = client.get("/messages", params={"campaign": "black-friday"}).json()
    assert [m["id"] for m in by_campaign["messages"]] == [str(a)]
    assert by_campaign["messages"][0]["campaign"] == "black-friday"
    by_contact = client.get("/messages", params={"contact_id": "doctor-3"}).json()
    assert {m["id"] for m in by_contact["messages"]} == {str(a), str(b)}
    sent = client.get("/messages", params={"state": "sent", "instance": "inst-a"}).json()
    assert {m["id"] for m in sent["messages"]} == {str(i) for i in seeded.message_ids}
    assert client.get("/messages", params={"state": "lost"}).status_code == 422
    assert client.get("/messages", params={"limit": 0}).status_code == 422
    assert client.get("/messages", params={"limit": 501}).status_code == 422


def test_keyset_paging_walks_every_message_once(seeded: Seeded, client: TestClient) -> None:
    made = [record(seeded.res, f"doctor-p{i}", 10) for i in range(5)]  # same created_at
    seen: list[str] = []
    before: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if before:
            params["before"] = before
        body = client.get("/messages", params=params).json()
        seen += [m["id"] for m in body["messages"]]
        pages += 1
        before = body["next_before"]
        if before is None:
            break
    assert pages == 4  # 7 messages, 2 a page
    assert len(seen) == len(set(seen)) == 7
    assert {str(m) for m in made} <= set(seen)
    assert client.get("/messages", params={"before": str(uuid.uuid4())}).json() == {
        "messages": [],
        "next_before": None,
    }


def test_timeline_shows_waits_failed_attempts_send_and_receipts(
    seeded: Seeded, client: TestClient
) -> None:
    res = seeded.res
    mid = record(res, "doctor-9", 0)
    t = NOW + timedelta(seconds=1)
    assert res.messages.note_requeue(mid, t, reason="caps", not_before=t + timedelta(hours=1))
    t2 = t + timedelta(hours=1, seconds=1)
    assert res.messages.note_requeue(mid, t2, reason="no instance online")
    claim_at = t2 + timedelta(seconds=5)
    res.messages.claim(mid, "inst-a", contact_id="doctor-9", seen_preference=None, now=claim_at)
    assert res.messages.return_to_queue(mid, "TransientEvolutionError on inst-a: 502", claim_at)
    sent_at = claim_at + timedelta(seconds=30)
    res.messages.claim(mid, "inst-a", contact_id="doctor-9", seen_preference="inst-a", now=sent_at)
    assert res.messages.mark_sent(mid, "3EB0XYZ", sent_at)
    with res.engine.begin() as conn:  # what the receipts webhook records
        conn.execute(
            text(
                "UPDATE messages SET receipt = 'read', delivered_at = :d, read_at = :r "
                "WHERE id = :id"
            ),
            {"d": sent_at + timedelta(seconds=3), "r": sent_at + timedelta(minutes=2), "id": mid},
        )
    events = client.get(f"/messages/{mid}/timeline").json()["events"]
    assert [e["kind"] for e in events] == [
        "accepted",
        "waiting",
        "requeued",
        "attempt_failed",
        "sent",
        "delivered",
        "read",
    ]
    waiting = events[1]
    assert waiting["reason"] == "caps"
    assert waiting["until"] == (t + timedelta(hours=1)).isoformat()
    assert events[2]["reason"] == "no instance online" and events[2]["until"] is None
    assert events[3]["instance"] == "inst-a" and "502" in events[3]["reason"]
    assert events[4]["instance"] == "inst-a" and events[4]["at"] == sent_at.isoformat()
    body = client.get(f"/messages/{mid}").json()
    assert body["receipt"] == "read" and body["requeues"] == 2 and body["attempts"] == 2
    assert client.get(f"/messages/{uuid.uuid4()}/timeline").status_code == 404


def test_timeline_of_a_failure_and_of_an_expiry(seeded: Seeded, client: TestClient) -> None:
    res = seeded.res
    failed = record(res, "doctor-f", 0)
    assert res.messages.mark_failed(failed, "recipient not on WhatsApp", NOW)
    expired = record(res, "doctor-e", 0)
    assert res.messages.mark_expired(expired, NOW + timedelta(hours=2))
    kinds = [e["kind"] for e in client.get(f"/messages/{failed}/timeline").json()["events"]]
    assert kinds == ["accepted", "failed"]
    events = client.get(f"/messages/{expired}/timeline").json()["events"]
    assert [e["kind"] for e in events] == ["accepted", "expired"]
    assert events[1]["reason"].startswith("expired: TTL passed")
