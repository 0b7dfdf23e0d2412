"""`/charts/*` on real PostgreSQL and Redis, and `/metrics` agreeing with them; the health
check writes the queue-depth samples the queue chart reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from config import Settings
from models.chart_store import ChartStore
from tests.integration.api_support import NOW, Seeded, open_resources, seeded_app
from tests.integration.test_messages_api import record
from worker.monitor.health_check import run_health_check
from worker.resources import Resources


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


def metric_values(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = client.get("/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def set_receipt(res: Resources, message_id: Any, delivered: bool, read: bool) -> None:
    with res.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE messages SET receipt = :r, delivered_at = :d, read_at = :rd WHERE id = :id"
            ),
            {
                "r": "read" if read else "delivered" if delivered else "server_ack",
                "d": NOW if delivered else None,
                "rd": NOW if read else None,
                "id": message_id,
            },
        )


def test_instance_chart_has_24_hourly_bars_against_the_cap(
    seeded: Seeded, client: TestClient
) -> None:
    set_receipt(seeded.res, seeded.message_ids[1], delivered=True, read=True)
    body = client.get("/charts/instances").json()
    rows = {r["name"]: r for r in body["instances"]}
    assert list(rows) == ["inst-a", "inst-b", "inst-c", "inst-d"]
    a = rows["inst-a"]
    assert a["capacity_hour"] == 10 and len(a["hours"]) == 24
    sent = [h["sent"] for h in a["hours"]]
    # 13:00 UTC = 10:00 local; sends at 07:50 (local hour 07) and 09:40 (local hour 09).
    assert sent[-1] == 0 and sent[-2] == 1 and sent[-4] == 1 and sum(sent) == 2
    assert a["hours"][-1]["hour"] == "2026-11-23T10:00:00-03:00"
    assert (a["sent_24h"], a["delivered_24h"], a["read_24h"]) == (2, 1, 1)
    assert a["delivered_pct_24h"] == 50.0 and a["read_pct_24h"] == 50.0
    b = rows["inst-b"]
    assert b["sent_24h"] == 0 and b["delivered_pct_24h"] is None
    assert sum(h["sent"] for h in b["hours"]) == 0

    metrics = metric_values(client)
    for key in ("sent_24h", "delivered_24h", "read_24h"):
        for name, row in rows.items():
            assert metrics[(f"zapdispatch_instance_{key}", (("instance", name),))] == row[key]


def test_queue_chart_reads_samples_and_held_reasons(seeded: Seeded, client: TestClient) -> None:
    res = seeded.res
    charts = ChartStore(res.sessions)
    parked = [record(res, f"doctor-w{i}", i) for i in range(3)]
    for mid in parked[:2]:
        assert res.messages.note_requeue(
            mid, NOW, reason="caps", not_before=NOW + timedelta(hours=1)
        )
    assert res.messages.note_requeue(parked[2], NOW, reason="no instance online")
    record(res, "doctor-q", 9)  # queued, never requeued: not held
    charts.sample_queue(NOW - timedelta(hours=1))
    assert charts.sample_queue(NOW) == {"queued": 2, "waiting": 2, "sending": 0}
    charts.sample_queue(NOW - timedelta(hours=72))  # past retention: dropped by the next one
    charts.sample_queue(NOW)  # the same instant again: ignored
    body = client.get("/charts/queue", params={"hours": 6}).json()
    assert [s["at"] for s in body["samples"]] == [
        (NOW - timedelta(hours=1)).isoformat(),
        NOW.isoformat(),
    ]
    assert body["samples"][-1] == {"at": NOW.isoformat(), "queued": 2, "waiting": 2, "sending": 0}
    assert body["waiting_by_reason"] == {"caps": 2, "no instance online": 1}
    metrics = metric_values(client)
    assert metrics[("zapdispatch_messages_held", (("reason", "caps"),))] == 2
    assert metrics[("zapdispatch_messages", (("state", "waiting"),))] == 2
    assert client.get("/charts/queue", params={"hours": 49}).status_code == 422


def test_campaign_funnel(seeded: Seeded, client: TestClient) -> None:
    res = seeded.res
    ids = [record(res, f"doctor-c{i}", i, campaign="promo") for i in range(4)]
    for n, mid in enumerate(ids[:3]):
        res.messages.claim(mid, "inst-a", contact_id=f"doctor-c{n}", seen_preference=None, now=NOW)
        assert res.messages.mark_sent(mid, f"3EB0{n}", NOW)
    set_receipt(res, ids[0], delivered=True, read=True)
    set_receipt(res, ids[1], delivered=True, read=False)
    body = client.get("/charts/campaigns").json()
    assert body["campaigns"] == [
        {
            "campaign": "promo",
            "accepted": 4,
            "sent": 3,
            "delivered": 2,
            "read": 1,
            "failed": 0,
            "cancelled": 0,
        }
    ]
    metrics = metric_values(client)
    for stage in ("accepted", "sent", "delivered", "read"):
        key = ("zapdispatch_campaign_messages", (("campaign", "promo"), ("stage", stage)))
        assert metrics[key] == body["campaigns"][0][stage]


def test_the_health_check_samples_the_queue(settings: Settings, redis_client: redis.Redis) -> None:
    res = open_resources(settings, redis_client)  # no instances: nothing to poll
    try:
        record(res, "doctor-h", 0)
        report = run_health_check(res)
        assert report.ran
        samples = ChartStore(res.sessions).queue_history(NOW - timedelta(minutes=1))
        assert [(s.sampled_at, s.counts) for s in samples] == [
            (NOW, {"queued": 1, "sending": 0, "waiting": 0})
        ]
    finally:
        res.close()
