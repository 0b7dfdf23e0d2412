"""The simulator on a loopback port, driven by the real EvolutionClient."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.simulator_server import SimulatorHandle, running_simulator
from worker.evolution import (
    AsyncEvolutionClient,
    EvolutionAuthError,
    EvolutionClient,
    EvolutionLicenceRequired,
    InstanceRateLimited,
    InstanceState,
    InstanceUnavailable,
    LookUpUnavailable,
    RecipientNotOnWhatsApp,
    SendOutcomeUnknown,
    TransientEvolutionError,
)
from worker.evolution.bodies import NOT_LOADED
from worker.evolution.exchange import ExchangeFailed
from worker.monitor.poll import PollPolicy, probe_each

NUMBER = "5511999998888"
KEY = "test-key"


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator(["inst-a", "inst-b"], api_key=KEY, seed=7) as handle:
        yield handle


@pytest.fixture
def client(sim: SimulatorHandle) -> Iterator[EvolutionClient]:
    with EvolutionClient(sim.url, KEY, timeout=httpx.Timeout(5.0, connect=2.0)) as evolution:
        yield evolution


def test_send_success_is_recorded(sim: SimulatorHandle, client: EvolutionClient) -> None:
    sent = client.send_text("inst-a", NUMBER, "olá")

    assert sent.status == "PENDING"
    assert sent.remote_jid == f"{NUMBER}@s.whatsapp.net"
    assert sent.provider_message_id.startswith("3EB0")
    assert len(sent.provider_message_id) == 20
    [message] = sim.messages("inst-a")
    assert message["number"] == NUMBER
    assert message["text"] == "olá"
    assert message["provider_message_id"] == sent.provider_message_id
    assert sim.messages("inst-b") == []


def test_contract_body_shape(sim: SimulatorHandle) -> None:
    response = httpx.post(
        f"{sim.url}/message/sendText/inst-a",
        json={"number": NUMBER, "text": "hi"},
        headers={"apikey": KEY},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["key"]["fromMe"] is True
    assert body["message"] == {"conversation": "hi"}
    assert body["messageType"] == "conversation"
    assert isinstance(body["messageTimestamp"], int)
    assert body["instanceId"]


def test_invalid_body_is_400(sim: SimulatorHandle) -> None:
    response = httpx.post(
        f"{sim.url}/message/sendText/inst-a", json={"number": NUMBER}, headers={"apikey": KEY}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "Bad Request"
    assert sim.messages() == []


def test_not_on_whatsapp(sim: SimulatorHandle, client: EvolutionClient) -> None:
    sim.configure(not_on_whatsapp=[NUMBER])
    with pytest.raises(RecipientNotOnWhatsApp):
        client.send_text("inst-a", NUMBER, "hi")
    assert sim.messages() == []


def test_a_dead_session_answers_as_evolution_does(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    """A number in Evolution's on-WhatsApp cache (sent to before): the send fails inside its
    try, 400 `["Error: Connection Closed"]`. Any other number: the number check fails first
    and Baileys' error reaches Express' handler, 500 with the bare string."""
    client.send_text("inst-a", NUMBER, "hi")  # NUMBER is now in the cache
    sim.configure_instance("inst-a", state="close", disconnection_reason=401)
    with pytest.raises(InstanceUnavailable) as caught:
        client.send_text("inst-a", NUMBER, "hi")
    assert caught.value.status_code == 400
    fresh = "5511988887777"
    answer = httpx.post(
        f"{sim.url}/message/sendText/inst-a",
        json={"number": fresh, "text": "hi"},
        headers={"apikey": KEY},
    )
    assert (answer.status_code, answer.json()) == (
        500,
        {
            "status": 500,
            "error": "Internal Server Error",
            "response": {"message": "Connection Closed"},
        },
    )
    with pytest.raises(InstanceUnavailable) as caught:
        client.send_text("inst-a", fresh, "hi")
    assert caught.value.status_code == 500
    assert len(sim.messages()) == 1


def test_an_instance_not_loaded_in_memory(sim: SimulatorHandle, client: EvolutionClient) -> None:
    """In Evolution's database, not in its memory: connectionState has no `state`, sendText
    and findMessages hit `waInstances[name]` undefined (500), fetchInstances lists its row."""
    sim.configure_instance("inst-a", loaded=False)
    raw = httpx.get(f"{sim.url}/instance/connectionState/inst-a", headers={"apikey": KEY})
    assert raw.json() == {"instance": {"instanceName": "inst-a"}}
    assert client.connection_state("inst-a").state == NOT_LOADED
    with pytest.raises(InstanceUnavailable) as caught:
        client.send_text("inst-a", NUMBER, "hi")
    assert caught.value.status_code == 500 and "reading 'textMessage'" in str(caught.value)
    with pytest.raises(LookUpUnavailable):
        client.sent_messages("inst-a", NUMBER)
    assert {s.name: s.state for s in client.fetch_instances()}["inst-a"] == "open"


def test_fetch_instances_rows_stay_open_during_auto_reconnect(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    sim.configure_instance("inst-a", state="connecting", db_state="open")
    assert {s.name: s.state for s in client.fetch_instances()}["inst-a"] == "open"
    assert client.connection_state("inst-a").state == "connecting"


def test_an_instance_key_lists_only_its_own_instances(sim: SimulatorHandle) -> None:
    sim.configure_instance("inst-a", token="token-a")
    with EvolutionClient(sim.url, "token-a") as own:
        assert [s.name for s in own.fetch_instances()] == ["inst-a"]  # 200, not 401
        assert own.connection_state("inst-a").state == "open"
        with pytest.raises(EvolutionAuthError):
            own.connection_state("inst-b")
    with EvolutionClient(sim.url, "nobody's") as stranger, pytest.raises(EvolutionAuthError):
        stranger.fetch_instances()
    sim.configure_instance("inst-a", loaded=False)
    with EvolutionClient(sim.url, "token-a") as own, pytest.raises(InstanceUnavailable):
        own.fetch_instances()  # instanceInfo: 404 for a named instance not in memory


def test_the_licence_gate_answers_every_route_before_the_key(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    sim.configure(license_required=True)
    for method, path in [
        ("POST", "/message/sendText/inst-a"),
        ("GET", "/instance/connectionState/ghost"),
        ("GET", "/instance/fetchInstances"),
        ("POST", "/chat/findMessages/inst-a"),
    ]:
        answer = httpx.request(method, f"{sim.url}{path}", json={})
        body = answer.json()
        assert answer.status_code == 503, path
        assert (body["error"], body["code"]) == ("service not activated", "LICENSE_REQUIRED")
        assert body["register_url"].endswith("/manager/login")
    with pytest.raises(EvolutionLicenceRequired):
        client.send_text("inst-a", NUMBER, "hi")
    assert sim.messages() == [] and sim.stats()["total_requests"] == 0
    sim.configure(license_required=False)
    assert client.send_text("inst-a", NUMBER, "hi").status == "PENDING"


def test_unknown_instance_is_404(client: EvolutionClient) -> None:
    with pytest.raises(InstanceUnavailable) as caught:
        client.send_text("ghost", NUMBER, "hi")
    assert caught.value.status_code == 404
    assert "ghost" in str(caught.value)


def test_wrong_key_is_auth_error(sim: SimulatorHandle) -> None:
    with EvolutionClient(sim.url, "wrong") as client, pytest.raises(EvolutionAuthError):
        client.send_text("inst-a", NUMBER, "hi")
    with EvolutionClient(sim.url, None) as client, pytest.raises(EvolutionAuthError):
        client.fetch_instances()


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("500", TransientEvolutionError),
        ("400", InstanceUnavailable),
        ("429", InstanceRateLimited),
        ("reset", SendOutcomeUnknown),
    ],
)
def test_failure_modes(
    sim: SimulatorHandle, client: EvolutionClient, mode: str, error: type[Exception]
) -> None:
    sim.configure_instance("inst-a", failure_rate=1.0, failure_mode=mode)
    with pytest.raises(error) as caught:
        client.send_text("inst-a", NUMBER, "hi")
    assert type(caught.value) is error
    assert sim.messages() == []
    assert sim.stats()["instances"]["inst-a"]["outcomes"] == {mode: 1}


def test_a_reset_mid_answer_leaves_the_outcome_unknown(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    sim.configure_instance("inst-a", failure_rate=1.0, failure_mode="reset")
    with pytest.raises(SendOutcomeUnknown) as caught:
        client.send_text("inst-a", NUMBER, "hi")
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, ExchangeFailed)
    assert caught.value.__cause__.kind in {"ReadError", "RemoteProtocolError"}


@pytest.mark.parametrize("mode", ["late", "drop", "proxy_502", "unreadable"])
def test_failures_after_sending_record_the_message(sim: SimulatorHandle, mode: str) -> None:
    sim.configure(hang_seconds=5)
    sim.configure_instance("inst-a", failure_rate=1.0, failure_mode=mode)
    with EvolutionClient(sim.url, KEY, timeout=httpx.Timeout(0.3, connect=0.3)) as client:
        if mode == "unreadable":
            assert client.send_text("inst-a", NUMBER, "hi").provider_message_id is None
        else:
            with pytest.raises(SendOutcomeUnknown):
                client.send_text("inst-a", NUMBER, "hi")
        (stored,) = client.sent_messages("inst-a", NUMBER)
    assert [m["text"] for m in sim.messages()] == ["hi"]
    assert stored.provider_message_id == sim.messages()[0]["provider_message_id"]
    assert stored.text == "hi" and stored.from_me


def test_find_messages_lists_a_chat_newest_first(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    first = client.send_text("inst-a", NUMBER, "one")
    second = client.send_text("inst-a", NUMBER, "two")
    client.send_text("inst-a", "5511911112222", "elsewhere")
    client.send_text("inst-b", NUMBER, "other instance")
    listed = client.sent_messages("inst-a", NUMBER)
    assert [m.provider_message_id for m in listed] == [
        second.provider_message_id,
        first.provider_message_id,
    ]
    assert client.keeps_messages("inst-a")


def test_find_messages_without_storage_or_route(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    client.send_text("inst-a", NUMBER, "one")
    sim.configure(keep_messages=False)
    assert client.sent_messages("inst-a", NUMBER) == []
    assert not client.keeps_messages("inst-a")
    sim.configure(find_messages_route=False)
    with pytest.raises(LookUpUnavailable):
        client.sent_messages("inst-a", NUMBER)


def test_429_carries_retry_after(sim: SimulatorHandle, client: EvolutionClient) -> None:
    sim.configure(failure_rate=1.0, failure_mode="429", retry_after_seconds=2.5)
    with pytest.raises(InstanceRateLimited) as caught:
        client.send_text("inst-b", NUMBER, "hi")
    assert caught.value.retry_after_seconds == 2.5


def test_timeout_mode(sim: SimulatorHandle) -> None:
    sim.configure_instance("inst-a", failure_rate=1.0, failure_mode="timeout")
    started = time.monotonic()
    with (
        EvolutionClient(sim.url, KEY, timeout=httpx.Timeout(0.3)) as client,
        pytest.raises(SendOutcomeUnknown) as caught,
    ):
        client.send_text("inst-a", NUMBER, "hi")
    assert time.monotonic() - started < 2.0
    assert isinstance(caught.value.__cause__, ExchangeFailed)
    assert caught.value.__cause__.kind == "ReadTimeout"


def test_failure_rate_is_seeded() -> None:
    def outcomes() -> list[bool]:
        with (
            running_simulator(["a"], seed=3, failure_rate=0.5) as sim,
            EvolutionClient(sim.url, None) as client,
        ):
            return [_sends(client) for _ in range(20)]

    first = outcomes()
    assert first == outcomes()
    assert 0 < sum(first) < 20


def _sends(client: EvolutionClient) -> bool:
    try:
        client.send_text("a", NUMBER, "hi")
    except TransientEvolutionError:
        return False
    return True


def test_latency_is_concurrent(sim: SimulatorHandle, client: EvolutionClient) -> None:
    sim.configure(latency_ms=300)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=10) as pool:
        sent = list(pool.map(lambda i: client.send_text("inst-a", NUMBER, f"m{i}"), range(10)))
    elapsed = time.monotonic() - started

    assert 0.3 <= elapsed < 1.5
    assert len({s.provider_message_id for s in sent}) == 10
    assert len(sim.messages()) == 10


def test_stats_count_every_request(sim: SimulatorHandle, client: EvolutionClient) -> None:
    client.send_text("inst-a", NUMBER, "hi")
    sim.configure_instance("inst-a", state="close")
    with pytest.raises(InstanceUnavailable):
        client.send_text("inst-a", NUMBER, "hi")

    stats = sim.stats()
    assert stats["total_requests"] == 2
    assert stats["instances"]["inst-a"] == {
        "requests": 2,
        "accepted": 1,
        "failed": 1,
        "outcomes": {"201": 1, "400": 1},
    }
    sim.clear_messages()
    assert sim.messages() == []
    assert sim.stats()["total_requests"] == 0


def test_connection_state_and_fetch_instances(
    sim: SimulatorHandle, client: EvolutionClient
) -> None:
    sim.configure_instance(
        "inst-b", state="close", disconnection_reason=403, number="5511900001111"
    )
    assert client.connection_state("inst-a").state == "open"
    assert client.connection_state("inst-b").state == "close"
    with pytest.raises(InstanceUnavailable):
        client.connection_state("ghost")

    by_name = {state.name: state for state in client.fetch_instances()}
    assert by_name["inst-b"] == InstanceState("inst-b", "close", 403, "5511900001111")
    assert by_name["inst-a"].state == "open"
    assert by_name["inst-a"].disconnection_reason is None


def test_fetch_instances_record_fields(sim: SimulatorHandle) -> None:
    sim.configure_instance("inst-b", state="close", disconnection_reason=401)
    response = httpx.get(f"{sim.url}/instance/fetchInstances", headers={"apikey": KEY})
    records = {record["name"]: record for record in response.json()}
    assert records["inst-b"]["connectionStatus"] == "close"
    assert records["inst-b"]["disconnectionReasonCode"] == 401
    assert records["inst-b"]["disconnectionAt"].endswith("Z")
    assert records["inst-a"]["disconnectionAt"] is None
    assert records["inst-a"]["ownerJid"].endswith("@s.whatsapp.net")


def test_admin_instances_lifecycle(sim: SimulatorHandle, client: EvolutionClient) -> None:
    sim.configure_instance("inst-c")
    assert client.connection_state("inst-c").state == "open"
    sim.remove_instance("inst-c")
    with pytest.raises(InstanceUnavailable):
        client.connection_state("inst-c")
    assert {i["name"] for i in sim.instances()} == {"inst-a", "inst-b"}


def test_hanging_health_checks_cost_one_timeout(sim: SimulatorHandle) -> None:
    """Five hung instances cost about one probe timeout, not five (they are probed at once).
    The timeout leaves a busy CI machine room to answer the healthy one in time."""
    names = [f"hang-{i}" for i in range(5)]
    for name in names:
        sim.configure_instance(name, hang_connection_state=True)
    policy = PollPolicy(timeout_seconds=1.0)

    async def poll() -> dict[str, object]:
        async with AsyncEvolutionClient(sim.url, KEY) as client:
            return dict(await probe_each(client, [*names, "inst-a"], policy))

    started = time.monotonic()
    results = asyncio.run(poll())
    assert time.monotonic() - started < 2.5 * policy.timeout_seconds  # one after another: 5
    assert results["inst-a"] == InstanceState("inst-a", "open", None, None)
    assert all(isinstance(results[name], TransientEvolutionError) for name in names)
