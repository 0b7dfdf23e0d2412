"""EvolutionClient / AsyncEvolutionClient against httpx.MockTransport (no network)."""

from __future__ import annotations

import asyncio
import json
import pickle
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import pytest

from worker.evolution import (
    AsyncEvolutionClient,
    EvolutionAuthError,
    EvolutionClient,
    EvolutionError,
    EvolutionLicenceRequired,
    InstanceRateLimited,
    InstanceState,
    InstanceUnavailable,
    LookUpUnavailable,
    RecipientNotOnWhatsApp,
    SendOutcomeUnknown,
    SentText,
    StoredMessage,
    TransientEvolutionError,
)
from worker.evolution.bodies import NOT_LOADED
from worker.evolution.exchange import ExchangeFailed
from worker.monitor.poll import PollPolicy, probe_each
from worker.phones import mask_phone
from worker.verification import CLOCK_SKEW_SECONDS, matching

BASE = "http://evolution.test"
NUMBER = "5511999998888"
SENT_BODY = {
    "key": {"remoteJid": f"{NUMBER}@s.whatsapp.net", "fromMe": True, "id": "3EB0ABCDEF0123456789"},
    "status": "PENDING",
    "message": {"conversation": "hi"},
    "messageType": "conversation",
    "messageTimestamp": 1732300000,
    "instanceId": "9b1c",
}

Handler = Callable[[httpx.Request], httpx.Response]


def client_for(handler: Handler, api_key: str | None = "secret") -> EvolutionClient:
    return EvolutionClient(BASE, api_key, transport=httpx.MockTransport(handler))


def error_body(status: int, error: str, message: Any) -> dict[str, Any]:
    return {"status": status, "error": error, "response": {"message": message}}


def answer(status: int, body: Any = None, **kwargs: Any) -> Handler:
    return lambda request: httpx.Response(status, json=body, **kwargs)


def send_with(handler: Handler) -> SentText:
    with client_for(handler) as client:
        return client.send_text("inst-a", NUMBER, "hi")


def test_send_text_posts_v2_body_with_apikey_and_parses_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=SENT_BODY)

    sent = send_with(handler)

    assert sent == SentText("3EB0ABCDEF0123456789", "PENDING", f"{NUMBER}@s.whatsapp.net")
    request = seen[0]
    assert request.method == "POST"
    assert request.url.path == "/message/sendText/inst-a"
    assert request.headers["apikey"] == "secret"
    assert json.loads(request.content) == {"number": NUMBER, "text": "hi"}


def test_send_text_accepts_200() -> None:
    assert send_with(answer(200, SENT_BODY)).provider_message_id == "3EB0ABCDEF0123456789"


def test_no_apikey_header_without_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=SENT_BODY)

    client_for(handler, api_key=None).send_text("inst-a", NUMBER, "hi")
    assert "apikey" not in seen[0].headers


def test_instance_name_is_quoted_in_path() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=SENT_BODY)

    client_for(handler).send_text("loja 1/sp", NUMBER, "hi")
    assert seen[0].url.raw_path == b"/message/sendText/loja%201%2Fsp"


def test_not_on_whatsapp_is_permanent_and_masks_number() -> None:
    body = error_body(
        400, "Bad Request", [{"jid": f"{NUMBER}@s.whatsapp.net", "exists": False, "number": NUMBER}]
    )
    with pytest.raises(RecipientNotOnWhatsApp) as caught:
        send_with(answer(400, body))
    assert caught.value.status_code == 400
    assert caught.value.instance == "inst-a"
    assert NUMBER not in str(caught.value)
    assert mask_phone(NUMBER) in str(caught.value)


def test_other_400_means_instance_unavailable() -> None:
    body = error_body(400, "Bad Request", ["Error: Connection Closed"])
    with pytest.raises(InstanceUnavailable) as caught:
        send_with(answer(400, body))
    assert caught.value.status_code == 400
    assert "Connection Closed" in str(caught.value)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors(status: int) -> None:
    with pytest.raises(EvolutionAuthError) as caught:
        send_with(answer(status, error_body(status, "Unauthorized", "Unauthorized")))
    assert caught.value.status_code == status
    assert "secret" not in str(caught.value)


def test_unknown_instance_is_unavailable() -> None:
    body = error_body(404, "Not Found", ['The "inst-a" instance does not exist'])
    with pytest.raises(InstanceUnavailable) as caught:
        send_with(answer(404, body))
    assert caught.value.status_code == 404


def test_429_carries_retry_after_seconds() -> None:
    body = error_body(429, "Too Many Requests", ["slow down"])
    with pytest.raises(InstanceRateLimited) as caught:
        send_with(answer(429, body, headers={"Retry-After": "7"}))
    assert caught.value.retry_after_seconds == 7.0
    assert caught.value.status_code == 429
    assert isinstance(caught.value, TransientEvolutionError)


def test_429_without_retry_after() -> None:
    with pytest.raises(InstanceRateLimited) as caught:
        send_with(answer(429, {}))
    assert caught.value.retry_after_seconds is None


def test_500_is_transient() -> None:
    with pytest.raises(TransientEvolutionError) as caught:
        send_with(answer(500, error_body(500, "Internal Server Error", ["boom"])))
    assert type(caught.value) is TransientEvolutionError
    assert caught.value.status_code == 500


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.WriteError("broken pipe"),
        httpx.WriteTimeout("slow"),
    ],
)
def test_failures_before_the_request_was_written_are_not_sent(exc: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(TransientEvolutionError) as caught:
        send_with(handler)
    assert type(caught.value) is TransientEvolutionError
    assert caught.value.status_code is None
    assert type(exc).__name__ in str(caught.value)
    assert isinstance(caught.value.__cause__, ExchangeFailed)
    assert caught.value.__cause__.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("slow"),
        httpx.ReadError("reset by peer"),
        httpx.RemoteProtocolError("peer closed connection"),
    ],
)
def test_failures_after_the_request_was_written_are_unknown(exc: httpx.HTTPError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(SendOutcomeUnknown) as caught:
        send_with(handler)
    assert type(exc).__name__ in str(caught.value) and NUMBER not in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_without_evolutions_envelope_is_unknown(status: int) -> None:
    with pytest.raises(SendOutcomeUnknown):
        send_with(lambda request: httpx.Response(status, content=b"<html>Bad Gateway</html>"))


def test_the_licence_gate_is_a_refusal_before_sending() -> None:
    """Evolution 2.4's 503 on every business route until it is activated: not sent."""
    gate = {"error": "service not activated", "code": "LICENSE_REQUIRED"}
    with pytest.raises(TransientEvolutionError) as caught:
        send_with(answer(503, gate))
    assert not isinstance(caught.value, SendOutcomeUnknown) and caught.value.status_code == 503
    assert isinstance(caught.value, EvolutionLicenceRequired)  # not the instance's fault


def test_a_dead_sessions_500_names_the_instance_unavailable() -> None:
    """A dead session whose recipient is not in Evolution's on-WhatsApp cache: Baileys'
    error reaches Express' handler as a plain string; an instance not loaded: a TypeError."""
    for message in ("Connection Closed", "Cannot read properties of undefined (reading 'x')"):
        with pytest.raises(InstanceUnavailable) as caught:
            send_with(answer(500, error_body(500, "Internal Server Error", message)))
        assert caught.value.status_code == 500


def test_connection_state_without_state_is_not_loaded() -> None:
    body = {"instance": {"instanceName": "idle"}}
    with client_for(answer(200, body)) as client:
        assert client.connection_state("idle") == InstanceState("idle", NOT_LOADED, None, None)
    with client_for(answer(200, {"nothing": 1})) as client, pytest.raises(TransientEvolutionError):
        client.connection_state("idle")


def test_a_5xx_in_evolutions_envelope_is_not_sent() -> None:
    body = error_body(500, "Internal Server Error", ["Error: Connection Closed"])
    with pytest.raises(TransientEvolutionError):
        send_with(answer(500, body))


@pytest.mark.parametrize("status", [200, 201, 202])
def test_any_2xx_is_sent(status: int) -> None:
    assert send_with(answer(status, SENT_BODY)).provider_message_id == SENT_BODY["key"]["id"]


@pytest.mark.parametrize("body", [b"{not json", b"", b"[1, 2]", b'{"key": {"id": ""}}', b"{}"])
def test_a_2xx_whose_body_cannot_be_read_is_sent_without_an_id(body: bytes) -> None:
    sent = send_with(lambda request: httpx.Response(201, content=body))
    assert sent.provider_message_id is None


def test_errors_survive_pickling() -> None:
    error = InstanceRateLimited("x", instance="inst-a", retry_after_seconds=3.0)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.instance, copy.status_code, copy.retry_after_seconds) == ("inst-a", 429, 3.0)


def test_connection_state() -> None:
    body = {"instance": {"instanceName": "inst-a", "state": "open"}}
    with client_for(answer(200, body)) as client:
        assert client.connection_state("inst-a") == InstanceState("inst-a", "open", None, None)


def test_connection_state_unknown_instance() -> None:
    client = client_for(answer(404, error_body(404, "Not Found", ["nope"])))
    with client, pytest.raises(InstanceUnavailable):
        client.connection_state("ghost")


FETCH_BODY = [
    {
        "name": "inst-a",
        "connectionStatus": "open",
        "number": "5511911112222",
        "ownerJid": "5511911112222@s.whatsapp.net",
        "disconnectionReasonCode": None,
        "disconnectionAt": None,
    },
    {
        "name": "inst-b",
        "connectionStatus": "close",
        "number": None,
        "ownerJid": "5511933334444@s.whatsapp.net",
        "disconnectionReasonCode": 401,
        "disconnectionAt": "2024-11-22T18:00:00.000Z",
    },
    {"name": "inst-c", "connectionStatus": "connecting"},
]
FETCH_EXPECTED = [
    InstanceState("inst-a", "open", None, "5511911112222"),
    InstanceState("inst-b", "close", 401, "5511933334444"),
    InstanceState("inst-c", "connecting", None, None),
]


def test_fetch_instances_parses_records() -> None:
    with client_for(answer(200, FETCH_BODY)) as client:
        assert client.fetch_instances() == FETCH_EXPECTED


@pytest.mark.parametrize("body", [{"name": "x"}, [{"name": "x"}], [1]])
def test_fetch_instances_unexpected_body(body: Any) -> None:
    with client_for(answer(200, body)) as client, pytest.raises(TransientEvolutionError):
        client.fetch_instances()


# --- async -------------------------------------------------------------------------------

AsyncHandler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def async_client_for(handler: AsyncHandler) -> AsyncEvolutionClient:
    return AsyncEvolutionClient(BASE, "secret", transport=httpx.MockTransport(handler))


def state_body(request: httpx.Request) -> dict[str, Any]:
    name = request.url.path.rsplit("/", 1)[-1]
    return {"instance": {"instanceName": name, "state": "open"}}


def test_async_fetch_instances_and_state() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["apikey"] == "secret"
        if request.url.path == "/instance/fetchInstances":
            return httpx.Response(200, json=FETCH_BODY)
        return httpx.Response(200, json=state_body(request))

    async def run() -> tuple[list[InstanceState], InstanceState]:
        async with async_client_for(handler) as client:
            return await client.fetch_instances(), await client.connection_state("inst-a")

    instances, state = asyncio.run(run())
    assert instances == FETCH_EXPECTED
    assert state == InstanceState("inst-a", "open", None, None)


def test_concurrent_probes_bound_each_call_by_its_own_timeout() -> None:
    hanging = {f"hang-{i}" for i in range(20)}
    names = [f"ok-{i}" for i in range(80)] + sorted(hanging) + ["gone"]

    async def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if name in hanging:
            await asyncio.sleep(30)
        if name == "gone":
            return httpx.Response(404, json=error_body(404, "Not Found", ["nope"]))
        return httpx.Response(200, json=state_body(request))

    async def run() -> dict[str, InstanceState | EvolutionError]:
        async with async_client_for(handler) as client:
            return await probe_each(client, names, PollPolicy(timeout_seconds=0.2))

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started

    assert elapsed < 2.0  # 20 hanging calls in series would take 4 s
    assert set(results) == set(names)
    assert all(isinstance(results[name], TransientEvolutionError) for name in hanging)
    assert isinstance(results["gone"], InstanceUnavailable)
    assert results["ok-3"] == InstanceState("ok-3", "open", None, None)


def test_each_request_carries_its_timeouts_and_the_base_path() -> None:
    """The client drives the transport itself: it must set what httpx.Client would have."""
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=SENT_BODY)

    timeout = httpx.Timeout(7.0, connect=2.0)
    transport = httpx.MockTransport(record)
    with EvolutionClient(f"{BASE}/evo/", "secret", timeout=timeout, transport=transport) as client:
        client.send_text("inst a", NUMBER, "olá")
    (request,) = seen
    assert str(request.url) == f"{BASE}/evo/message/sendText/inst%20a"
    assert request.extensions["timeout"] == timeout.as_dict()
    assert request.headers["apikey"] == "secret"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "zapdispatch"
    assert json.loads(request.content) == {"number": NUMBER, "text": "olá"}


def stored(message_id: str, text: str, stamp: Any, *, from_me: bool = True) -> dict[str, Any]:
    """One record of findMessages as Evolution's fetchMessages selects it."""
    return {
        "id": "cm4x",
        "key": {"id": message_id, "fromMe": from_me, "remoteJid": f"{NUMBER}@s.whatsapp.net"},
        "pushName": "Você",
        "messageType": "conversation",
        "message": {"conversation": text},
        "messageTimestamp": stamp,
        "instanceId": "9b1c",
        "source": "unknown",
        "contextInfo": None,
        "MessageUpdate": [],
    }


def test_sent_messages_asks_findmessages_for_the_chat_and_parses_records() -> None:
    seen: list[httpx.Request] = []
    records = [
        stored("A", "hi", 1732300000),
        {**stored("B", "", "1732300001"), "message": {"extendedTextMessage": {"text": "link"}}},
        {"key": "not an object"},
        stored("C", "x", None),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"messages": {"total": 4, "pages": 1, "currentPage": 1, "records": records}}
        return httpx.Response(200, json=body)

    with client_for(handler) as client:
        found = client.sent_messages("inst-a", NUMBER)
    assert [(m.provider_message_id, m.text, m.timestamp) for m in found] == [
        ("A", "hi", 1732300000.0),
        ("B", "link", 1732300001.0),
    ]
    assert seen[0].url.path == "/chat/findMessages/inst-a"
    assert json.loads(seen[0].content) == {
        "where": {"key": {"remoteJid": f"{NUMBER}@s.whatsapp.net", "fromMe": True}},
        "offset": 50,
        "page": 1,
    }


@pytest.mark.parametrize(
    "handler",
    [
        lambda request: httpx.Response(404, text="Cannot POST /chat/findMessages/inst-a"),
        lambda request: httpx.Response(200, json={"unexpected": True}),
        lambda request: httpx.Response(400, json=error_body(400, "Bad Request", ["x"])),
    ],
)
def test_a_look_up_evolution_cannot_answer_is_unavailable(handler: Handler) -> None:
    with client_for(handler) as client, pytest.raises(LookUpUnavailable):
        client.sent_messages("inst-a", NUMBER)


def test_keeps_messages_is_whether_anything_sent_is_listed() -> None:
    def listing(records: list[Any]) -> Handler:
        return answer(
            200, {"messages": {"total": 0, "pages": 0, "currentPage": 1, "records": records}}
        )

    with client_for(listing([])) as client:
        assert client.keeps_messages("inst-a") is False
    with client_for(listing([stored("A", "hi", 1)])) as client:
        assert client.keeps_messages("inst-a") is True


def test_a_look_up_matches_the_same_text_sent_after_the_attempt_began() -> None:
    messages = [
        StoredMessage("old", True, "hi", 1000.0),
        StoredMessage("theirs", False, "hi", 2000.0),
        StoredMessage("other", True, "bye", 2000.0),
        StoredMessage("ours", True, "hi", 2001.0),
        StoredMessage("later", True, "hi", 2500.0),
    ]
    assert matching(messages, "hi", since=2000.0) == messages[3]
    assert matching(messages, "hi", since=2000.0 + CLOCK_SKEW_SECONDS + 600) is None
    assert matching(messages, "nothing like it", since=0.0) is None
