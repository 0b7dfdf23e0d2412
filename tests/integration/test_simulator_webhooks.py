"""The simulator's webhooks (Evolution v2.3.7's shapes) posted to a recording receiver."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import jwt
import pytest

from tests.fakes.webhook_sink import WebhookSink, running_webhook_sink
from tests.simulator_server import SimulatorHandle, running_simulator
from worker.evolution import EvolutionClient

KEY = "test-key"
NUMBER = "5511999998888"
ENVELOPE_KEYS = {
    "event",
    "instance",
    "data",
    "destination",
    "date_time",
    "sender",
    "server_url",
    "apikey",
}


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with running_webhook_sink() as receiver:
        yield receiver


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator(["inst-a", "inst-b"], api_key=KEY, seed=3) as handle:
        yield handle


def set_webhook(sim: SimulatorHandle, instance: str, **webhook: object) -> httpx.Response:
    return httpx.post(
        f"{sim.url}/webhook/set/{instance}",
        json={"webhook": webhook},
        headers={"apikey": KEY},
    )


def test_webhook_set_validates_like_evolution(sim: SimulatorHandle, sink: WebhookSink) -> None:
    ok = set_webhook(sim, "inst-a", enabled=True, url=sink.url, events=["CONNECTION_UPDATE"])
    assert ok.status_code == 201 and ok.json()["url"] == sink.url
    found = httpx.get(f"{sim.url}/webhook/find/inst-a", headers={"apikey": KEY})
    assert found.json()["events"] == ["CONNECTION_UPDATE"]
    assert set_webhook(sim, "inst-a", enabled=True).status_code == 400  # no url
    assert (
        set_webhook(sim, "inst-a", enabled=True, url=sink.url, events=["NOPE"]).status_code == 400
    )
    assert set_webhook(sim, "nobody", enabled=True, url=sink.url).status_code == 404


def test_a_ban_sends_status_instance_then_connection_update(
    sim: SimulatorHandle, sink: WebhookSink
) -> None:
    set_webhook(
        sim,
        "inst-a",
        enabled=True,
        url=sink.url,
        headers={"Authorization": "Bearer t"},
        events=["CONNECTION_UPDATE", "STATUS_INSTANCE"],
    )
    sim.configure_instance("inst-a", state="close", disconnection_reason=403)
    sink.wait_for(lambda r: len(r) == 2)
    (first, second) = sink.received
    assert first.body["event"] == "status.instance"
    assert first.body["data"]["status"] == "closed"
    assert first.body["data"]["disconnectionReasonCode"] == 403
    assert second.body["event"] == "connection.update"
    assert second.body["data"] == {"instance": "inst-a", "state": "close", "statusReason": 403}
    assert set(second.body) == ENVELOPE_KEYS and second.body["date_time"].endswith("Z")
    assert second.headers["authorization"] == "Bearer t"


def test_by_events_suffix_and_reconnecting_close(sim: SimulatorHandle, sink: WebhookSink) -> None:
    set_webhook(sim, "inst-a", enabled=True, url=sink.url, byEvents=True)
    sim.configure_instance("inst-a", state="close", disconnection_reason=428)  # reconnects
    sink.wait_for(lambda r: len(r) == 1)
    assert sink.received[0].path == "/hooks/connection-update"
    assert sink.received[0].body["data"]["state"] == "connecting"


def test_receipts_follow_a_send_and_never_delivers_stops_at_server_ack(
    sim: SimulatorHandle, sink: WebhookSink
) -> None:
    sim.configure(receipt_delays_ms=[10, 20, 30], webhook_url=sink.url)
    sim.configure_instance("inst-b", never_delivers=True)
    with EvolutionClient(sim.url, KEY) as client:
        a = client.send_text("inst-a", NUMBER, "oi").provider_message_id
        b = client.send_text("inst-b", NUMBER, "oi").provider_message_id
    sink.wait_for(lambda r: len(r) == 4)
    statuses = {(d["keyId"], d["status"]) for e, d in sink.events() if e == "messages.update"}
    assert statuses == {(a, "SERVER_ACK"), (a, "DELIVERY_ACK"), (a, "READ"), (b, "SERVER_ACK")}
    data = sink.received[0].body["data"]
    assert {"keyId", "remoteJid", "fromMe", "status", "instanceId"} <= set(data)


def test_inbound_jwt_and_retries(sim: SimulatorHandle, sink: WebhookSink) -> None:
    secret = "0123456789abcdef0123456789abcdef"
    set_webhook(sim, "inst-a", enabled=True, url=sink.url, headers={"jwt_key": secret})
    sink.statuses.extend([500, 503])  # Evolution retries 5xx
    sim.inbound("inst-a", NUMBER, "PARE")
    sink.wait_for(lambda r: len(r) == 3)
    event, data = sink.events()[-1]
    assert event == "messages.upsert"
    assert data["key"] == {
        "remoteJid": f"{NUMBER}@s.whatsapp.net",
        "fromMe": False,
        "id": data["key"]["id"],
    }
    assert data["message"] == {"conversation": "PARE"}
    token = sink.received[-1].headers["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert claims["app"] == "evolution" and claims["exp"] - claims["iat"] == 600
    assert "jwt_key" not in sink.received[-1].headers
    assert [a["status"] for a in sim.webhook_attempts()] == [500, 503, 200]


def test_guard_order_is_404_before_401(sim: SimulatorHandle) -> None:
    """Evolution checks that the instance exists before the api key (every instance route)."""
    wrong = {"apikey": "wrong"}
    for method, path in [
        ("POST", "/message/sendText/nobody"),
        ("GET", "/instance/connectionState/nobody"),
        ("POST", "/webhook/set/nobody"),
    ]:
        answer = httpx.request(method, f"{sim.url}{path}", headers=wrong, json={})
        assert answer.status_code == 404, (path, answer.text)
        known = httpx.request(
            method, f"{sim.url}{path.replace('nobody', 'inst-a')}", headers=wrong, json={}
        )
        assert known.status_code == 401, (path, known.text)
    assert httpx.get(f"{sim.url}/instance/fetchInstances", headers=wrong).status_code == 401
