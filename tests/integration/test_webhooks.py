"""`POST /webhooks/evolution` on real PostgreSQL and Redis: auth, refusals, connection
changes through the poll's state machine, receipts, replies and opt-outs.

The alert pass the webhook schedules (a Celery task in production) is recorded, or run
in-line on a real health monitor where the test is about alerts."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

import jwt
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select

from config import Settings
from models.enums import InstanceStatus, Receipt
from models.tables import Contact, Message
from tests.integration.api_support import NOW, T0, open_resources, sent_message
from worker import keys
from worker.api import create_app, deps_from_resources
from worker.api.deps import webhook_service
from worker.resources import Resources, build_resources

TOKEN = "hook-s3cret-0123456789abcdef0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_token": SecretStr(TOKEN), "webhook_max_body_bytes": 4096}
    )


@pytest.fixture
def res(hook_settings: Settings, redis_client: redis.Redis) -> Iterator[Resources]:
    resources = open_resources(hook_settings, redis_client)
    resources.instances.add("inst-a", "5511900000001", 10, 100, status=InstanceStatus.CONNECTED)
    resources.instances.add("inst-b", "5511900000002", 10, 100, status=InstanceStatus.CONNECTED)
    yield resources
    resources.close()


@dataclasses.dataclass
class Hooks:
    client: TestClient
    res: Resources
    triggered: list[Mapping[str, int]]

    def post(self, event: str, data: Any, *, instance: str = "inst-a", path: str = "") -> Any:
        body = envelope(event, data, instance=instance)
        return self.client.post(f"/webhooks/evolution{path}", json=body, headers=BEARER)

    def status(self, name: str) -> InstanceStatus:
        return self.res.instances.get(name).status


def envelope(event: str, data: Any, *, instance: str = "inst-a") -> dict[str, Any]:
    """Evolution's envelope (webhook.controller.ts v2.3.7 `emit`)."""
    return {
        "event": event,
        "instance": instance,
        "data": data,
        "destination": "http://zapdispatch.test/webhooks/evolution",
        "date_time": "2026-11-23T10:00:00.000Z",
        "sender": "5511900000001@s.whatsapp.net",
        "server_url": "http://evolution.test",
        "apikey": None,
    }


def make_hooks(res: Resources, trigger: Callable[[Mapping[str, int]], None] | None = None) -> Hooks:
    triggered: list[Mapping[str, int]] = []
    service = webhook_service(res, trigger or triggered.append)
    deps = dataclasses.replace(deps_from_resources(res), webhooks=service)
    return Hooks(TestClient(create_app(deps)), res, triggered)


@pytest.fixture
def hooks(res: Resources) -> Hooks:
    return make_hooks(res)


def outcomes(client: redis.Redis) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.hgetall(keys.WEBHOOK_OUTCOMES).items()}


# --- the endpoint: off, auth, refusals -----------------------------------------------------


def test_off_without_webhook_token(settings: Settings, redis_client: redis.Redis) -> None:
    res = open_resources(settings, redis_client)
    try:
        client = TestClient(create_app(deps_from_resources(res)))
        answer = client.post("/webhooks/evolution", json=envelope("connection.update", {}))
        assert answer.status_code == 404
    finally:
        res.close()


def test_bearer_token_and_jwt_are_accepted(hooks: Hooks) -> None:
    data = {"instance": "inst-a", "state": "open", "statusReason": 200}
    assert hooks.post("connection.update", data).status_code == 200
    token = jwt.encode(
        {
            "iat": int(time.time()),
            "exp": int(time.time()) + 600,
            "app": "evolution",
            "action": "webhook",
        },
        TOKEN,
        algorithm="HS256",
    )
    answer = hooks.client.post(
        "/webhooks/evolution",
        json=envelope("connection.update", data),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},  # no scheme
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer " + jwt.encode({"exp": 4_000_000_000}, "other", "HS256")},
        {"Authorization": "Bearer " + jwt.encode({"exp": 1_000_000_000}, TOKEN, "HS256")},
        {"Authorization": "Bearer " + jwt.encode({"app": "evolution"}, TOKEN, "HS256")},
        {"Authorization": "Bearer " + jwt.encode({"exp": 4_000_000_000}, None, "none")},
    ],
    ids=[
        "none",
        "wrong",
        "no-scheme",
        "basic",
        "jwt-other-key",
        "jwt-expired",
        "jwt-no-exp",
        "jwt-alg-none",
    ],
)
def test_refused_without_a_valid_token(hooks: Hooks, headers: dict[str, str]) -> None:
    data = {"instance": "inst-a", "state": "close", "statusReason": 401}
    answer = hooks.client.post(
        "/webhooks/evolution", json=envelope("connection.update", data), headers=headers
    )
    assert answer.status_code == 401
    assert answer.json() == {"detail": "missing or invalid webhook token"}
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED


def test_the_api_token_does_not_open_the_webhook(
    hook_settings: Settings, redis_client: redis.Redis
) -> None:
    res = open_resources(
        hook_settings.model_copy(update={"api_token": SecretStr("api-token")}), redis_client
    )
    try:
        client = make_hooks(res).client
        body = envelope("connection.update", {"state": "open"})
        assert client.post("/webhooks/evolution", json=body, headers=BEARER).status_code != 401
        wrong = {"Authorization": "Bearer api-token"}
        assert client.post("/webhooks/evolution", json=body, headers=wrong).status_code == 401
    finally:
        res.close()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"[1, 2]", 422),
        (b'{"event": "connection.update", "data": {}}', 422),  # no instance
        (b'{"event": "", "instance": "inst-a", "data": {}}', 422),
        (b'{"event": "connection.update", "instance": "inst-a", "data": "x"}', 422),
        (b'{"event": "connection.update", "instance": "inst-a", "data": {}}', 422),  # no state
        (
            b'{"event": "connection.update", "instance": "inst-a", '
            b'"data": {"state": "close", "statusReason": "abc"}}',
            422,
        ),
        (b'{"event": "messages.update", "instance": "inst-a", "data": {"status": "READ"}}', 422),
        (b'{"event": "messages.upsert", "instance": "inst-a", "data": {"key": 1}}', 422),
    ],
)
def test_malformed_bodies_are_400_or_422_and_change_nothing(
    hooks: Hooks, body: bytes, status: int
) -> None:
    headers = {**BEARER, "Content-Type": "application/json"}
    answer = hooks.client.post("/webhooks/evolution", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert "detail" in answer.json()
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED
    assert hooks.triggered == []


def test_an_oversized_body_is_413_declared_or_streamed(hooks: Hooks) -> None:
    big = envelope("connection.update", {"state": "close", "pad": "x" * 5000})
    answer = hooks.client.post("/webhooks/evolution", json=big, headers=BEARER)
    assert answer.status_code == 413
    chunks = iter([b'{"event": "connection.update", "pad": "', b"x" * 5000, b'"}'])
    streamed = hooks.client.post("/webhooks/evolution", content=chunks, headers=BEARER)
    assert streamed.status_code == 413
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED


def test_unknown_events_and_instances_are_200_and_change_nothing(hooks: Hooks) -> None:
    close = {"state": "close", "statusReason": 401}
    assert hooks.post("chats.upsert", [{"remoteJid": "x"}]).json()["outcome"] == "ignored_event"
    assert hooks.post("send.message", {"key": {"id": "3EB0"}}).json()["outcome"] == "ignored_event"
    unknown = hooks.post("connection.update", close, instance="nobody")
    assert unknown.status_code == 200 and unknown.json()["outcome"] == "ignored_instance"
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED
    assert outcomes(hooks.res.redis) == {"ignored_event": 2, "ignored_instance": 1}


def test_503_while_postgresql_is_down(hook_settings: Settings, redis_client: redis.Redis) -> None:
    down = hook_settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/zapdispatch"}
    )
    res = build_resources(down)
    try:
        answer = make_hooks(res).post("connection.update", {"state": "close"})
        assert answer.status_code == 503
        assert answer.json() == {"detail": "database unavailable"}
    finally:
        res.close()


# --- connection.update / status.instance -------------------------------------------------


@pytest.mark.parametrize(
    ("event", "path"),
    [
        ("connection.update", ""),
        ("CONNECTION_UPDATE", ""),
        ("connection.update", "/connection-update"),  # byEvents
    ],
)
def test_a_close_disconnects_at_once_and_schedules_the_alert_pass(
    hooks: Hooks, event: str, path: str
) -> None:
    data = {"instance": "inst-a", "state": "close", "statusReason": 401}
    answer = hooks.post(event, data, path=path)
    assert answer.status_code == 200 and answer.json()["outcome"] == "status_changed"
    view = hooks.res.instances.get("inst-a")
    assert view.status is InstanceStatus.DISCONNECTED
    assert "logged out (401)" in (view.status_reason or "")
    assert hooks.triggered == [{}]
    assert hooks.res.redis.get(keys.ROUTING_VERSION) == b"1"  # every worker reloads
    again = hooks.post(event, data, path=path)  # Evolution retried: nothing more happens
    assert again.json()["outcome"] == "status_unchanged" and hooks.triggered == [{}]
    assert hooks.res.redis.get(keys.ROUTING_VERSION) == b"1"


def test_connecting_then_open(hooks: Hooks) -> None:
    hooks.post("connection.update", {"state": "connecting", "statusReason": 200})
    assert hooks.status("inst-a") is InstanceStatus.CONNECTING
    hooks.post("connection.update", {"state": "open", "statusReason": 200, "wuid": "x"})
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED


@pytest.mark.parametrize("code", [402, 403, 406])
def test_ban_codes_ban_and_migrate_contacts(hooks: Hooks, code: int, engine: Engine) -> None:
    sent_message(hooks.res, "inst-a", "doctor-1", NOW - timedelta(minutes=5))
    answer = hooks.post(
        "status.instance",
        {
            "instance": "inst-a",
            "status": "closed",
            "disconnectionAt": "2026-11-23T10:00:00.000Z",
            "disconnectionReasonCode": code,
            "disconnectionObject": "{}",
        },
    )
    assert answer.json()["outcome"] == "status_changed"
    assert hooks.status("inst-a") is InstanceStatus.BANNED
    assert hooks.triggered == [{"inst-a": 1}]
    with engine.connect() as conn:
        preferred = conn.scalar(select(Contact.preferred_instance).where(Contact.id == "doctor-1"))
    assert preferred is None


def test_ban_reason_codes_are_configurable(
    hook_settings: Settings, redis_client: redis.Redis
) -> None:
    res = open_resources(hook_settings.model_copy(update={"ban_reason_codes": "403"}), redis_client)
    try:
        res.instances.add("inst-a", "5511900000001", 10, 100, status=InstanceStatus.CONNECTED)
        hooks = make_hooks(res)
        hooks.post("connection.update", {"state": "close", "statusReason": 402})
        assert hooks.status("inst-a") is InstanceStatus.DISCONNECTED
    finally:
        res.close()


def test_status_instance_other_than_closed_is_ignored(hooks: Hooks) -> None:
    answer = hooks.post("status.instance", {"instance": "inst-a", "status": "created"})
    assert answer.json()["outcome"] == "ignored_message"
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED


def test_a_banned_number_stays_banned(hooks: Hooks) -> None:
    hooks.post("connection.update", {"state": "close", "statusReason": 403})
    answer = hooks.post("connection.update", {"state": "open", "statusReason": 200})
    assert answer.json()["outcome"] == "status_unchanged"
    assert hooks.status("inst-a") is InstanceStatus.BANNED


def test_a_late_retry_of_an_older_connection_webhook_changes_nothing(hooks: Hooks) -> None:
    def post(state: str, code: int, sent: str) -> str:
        body = envelope("connection.update", {"state": state, "statusReason": code})
        body["date_time"] = sent
        answer = hooks.client.post("/webhooks/evolution", json=body, headers=BEARER)
        return str(answer.json()["outcome"])

    assert post("close", 401, "2026-11-23T10:00:05.000Z") == "status_changed"
    assert post("open", 200, "2026-11-23T10:00:09.000Z") == "status_changed"
    # Evolution retries the close (our endpoint had failed then): it was sent before the open.
    assert post("close", 401, "2026-11-23T10:00:05.000Z") == "status_out_of_order"
    assert hooks.status("inst-a") is InstanceStatus.CONNECTED
    assert post("close", 401, "2026-11-23T10:00:09.000Z") == "status_changed"  # same instant
    assert post("open", 200, "not a date") == "status_changed"  # unreadable: taken as it comes


def test_an_older_poll_does_not_undo_a_newer_webhook(hooks: Hooks) -> None:
    hooks.post("connection.update", {"state": "close", "statusReason": 401})  # at T0
    stale = hooks.res.instances.set_status(
        "inst-a",
        InstanceStatus.CONNECTED,
        None,
        NOW + timedelta(seconds=5),
        observed_at=NOW - timedelta(seconds=1),  # the poll read it before the webhook came
    )
    assert stale is None and hooks.status("inst-a") is InstanceStatus.DISCONNECTED
    newer = hooks.res.instances.set_status(
        "inst-a", InstanceStatus.CONNECTED, None, NOW + timedelta(seconds=60)
    )
    assert newer is not None and hooks.status("inst-a") is InstanceStatus.CONNECTED


# --- messages.update: receipts ------------------------------------------------------------


def receipt(key_id: str, status: str, *, from_me: bool = True) -> dict[str, Any]:
    """`messages.update` data (whatsapp.baileys.service.ts v2.3.7)."""
    return {
        "keyId": key_id,
        "remoteJid": "5511999998888@s.whatsapp.net",
        "fromMe": from_me,
        "participant": None,
        "status": status,
        "instanceId": "c1a2b3",
        "messageId": "cm0000",
    }


def message_row(engine: Engine, message_id: uuid.UUID) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            select(Message.receipt, Message.delivered_at, Message.read_at).where(
                Message.id == message_id
            )
        ).one()


def test_receipts_move_forward_only(hooks: Hooks, engine: Engine) -> None:
    mid = sent_message(hooks.res, "inst-a", "doctor-1", NOW - timedelta(minutes=5))
    assert (
        hooks.post("messages.update", receipt("3EB0TEST", "SERVER_ACK")).json()["outcome"]
        == "receipt_applied"
    )
    assert message_row(engine, mid) == (Receipt.SERVER_ACK, None, None)
    hooks.post("messages.update", receipt("3EB0TEST", "DELIVERY_ACK"))
    hooks.res.redis.set(keys.TEST_CLOCK, repr(T0 + 30))
    hooks.post("messages.update", receipt("3EB0TEST", "READ"))
    row = message_row(engine, mid)
    assert row.receipt is Receipt.READ
    assert row.delivered_at.timestamp() == T0 and row.read_at.timestamp() == T0 + 30
    for late in ("DELIVERY_ACK", "SERVER_ACK", "ERROR", "READ"):
        assert (
            hooks.post("messages.update", receipt("3EB0TEST", late)).json()["outcome"]
            == "receipt_stale"
        )
    assert message_row(engine, mid) == row
    hooks.post(
        "messages.update",
        {**receipt("ignored", "PLAYED"), "keyId": None, "key": {"id": "3EB0TEST", "fromMe": True}},
    )
    assert message_row(engine, mid).receipt is Receipt.PLAYED


def test_a_read_that_skipped_delivery_stamps_both(hooks: Hooks, engine: Engine) -> None:
    mid = sent_message(hooks.res, "inst-a", "doctor-1", NOW - timedelta(minutes=5))
    hooks.post("messages.update", receipt("3EB0TEST", "READ"))
    row = message_row(engine, mid)
    assert row.receipt is Receipt.READ and row.delivered_at == row.read_at


def test_error_before_delivery_ends_it(hooks: Hooks, engine: Engine) -> None:
    mid = sent_message(hooks.res, "inst-a", "doctor-1", NOW - timedelta(minutes=5))
    hooks.post("messages.update", receipt("3EB0TEST", "SERVER_ACK"))
    hooks.post("messages.update", receipt("3EB0TEST", "ERROR"))
    hooks.post("messages.update", receipt("3EB0TEST", "DELIVERY_ACK"))
    assert message_row(engine, mid).receipt is Receipt.ERROR


def test_unknown_ids_and_other_receipts_are_counted_and_ignored(hooks: Hooks) -> None:
    assert (
        hooks.post("messages.update", receipt("NOPE", "READ")).json()["outcome"]
        == "receipt_unknown"
    )
    inbound = hooks.post("messages.update", receipt("3EB0TEST", "READ", from_me=False))
    assert inbound.json()["outcome"] == "ignored_message"
    pending = hooks.post("messages.update", receipt("3EB0TEST", "PENDING"))
    assert pending.json()["outcome"] == "ignored_message"
    assert outcomes(hooks.res.redis) == {"receipt_unknown": 1, "ignored_message": 2}


def test_delivered_pct_24h_in_rows_and_metrics(hooks: Hooks) -> None:
    rows = {r["name"]: r for r in hooks.client.get("/dashboard/instances").json()["instances"]}
    assert rows["inst-a"]["delivered_pct_24h"] is None  # before any receipt
    for i, status in enumerate(["DELIVERY_ACK", "READ", "SERVER_ACK", None]):
        mid = sent_message(hooks.res, "inst-a", f"doctor-{i}", NOW - timedelta(minutes=5))
        with hooks.res.sessions.begin() as session:
            session.get(Message, mid).provider_message_id = f"3EB0-{i}"  # type: ignore[union-attr]
        if status:
            hooks.post("messages.update", receipt(f"3EB0-{i}", status))
    hooks.post("messages.update", receipt("NOPE", "READ"))
    rows = {r["name"]: r for r in hooks.client.get("/dashboard/instances").json()["instances"]}
    assert rows["inst-a"]["delivered_pct_24h"] == 50.0
    assert rows["inst-b"]["delivered_pct_24h"] is None
    metrics = hooks.client.get("/metrics").text
    assert 'zapdispatch_instance_delivered_percent{instance="inst-a"} 50.0' in metrics
    assert 'zapdispatch_instance_delivered_percent{instance="inst-b"}' not in metrics
    assert 'zapdispatch_webhooks_total{outcome="receipt_unknown"} 1.0' in metrics
    assert 'zapdispatch_webhooks_total{outcome="receipt_applied"} 3.0' in metrics
