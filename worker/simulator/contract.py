"""The Evolution API v2 endpoints the project uses, simulated (README, *Evolution API*).

Order of checks per sendText, as in the real server (`guards.py`): the licence gate (503,
in `license_required` mode), instance exists (404), api key (401), body valid (400); then
the simulated latency, the injected failure if drawn, an instance not loaded in memory (500,
a TypeError's message), a dead session (instance not open: 400 `["Error: Connection
Closed"]` when the number is in Evolution's on-WhatsApp cache, which holds every number
this simulator has delivered to; else 500 with the string `Connection Closed`, Baileys'
error unwrapped), the number check (400 `exists: false`), and success (201).

sendText is the hot path of every benchmark, so it is a bare ASGI endpoint
(`SendTextEndpoint`, routed by `send_text_route`) rather than a FastAPI route: no
dependency solving, no request validation, no response model; same answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from worker.simulator.guards import (
    ContractError,
    check_api_key,
    check_licence,
    existing,
    hang,
)
from worker.simulator.instance_routes import add_instance_routes
from worker.simulator.state import (
    FailureMode,
    ReceivedMessage,
    SimInstance,
    SimulatorState,
)
from worker.simulator.webhooks import KNOWN_EVENTS, WebhookConfig

SEND_TEXT_PATH = "/message/sendText/{instance}"

#: `response.message` of Evolution's 500 for an instance in its database, not in memory.
_NOT_LOADED = "Cannot read properties of undefined (reading '{method}')"

_JSON = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""Encodes as starlette's JSONResponse does, without building an encoder per call."""


class DroppedConnection(Exception):
    """Raised mid-answer so that uvicorn closes the connection: a simulated reset."""


class _ResetResponse(Response):
    """Starts an answer, sends half a body, then drops the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"key": {', "more_body": True})
        raise DroppedConnection


class SendTextEndpoint:
    """`POST /message/sendText/{instance}` as a bare ASGI app (see the module docstring)."""

    def __init__(self, sim: SimulatorState) -> None:
        self._sim = sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._answer(request, scope["path_params"]["instance"])
        except ClientDisconnect:  # the sender died mid-request (chaos tests kill workers)
            return
        await response(scope, receive, send)

    async def _answer(self, request: Request, instance: str) -> Response:
        sim = self._sim
        try:
            check_licence(sim, request)  # neither a 503 nor a 401 is counted as a send
            check_api_key(sim, request)
        except ContractError as error:
            return error.to_response()
        sim.count_request(instance)
        try:
            response, outcome = await _send_text(sim, instance, request)
        except ContractError as error:
            response, outcome = error.to_response(), str(error.status)
        sim.count_outcome(instance, outcome)
        return response


def send_text_route(sim: SimulatorState) -> Route:
    """The sendText route (POST only: other methods get FastAPI's 405)."""
    return Route(SEND_TEXT_PATH, SendTextEndpoint(sim), methods=["POST"])


def contract_router(sim: SimulatorState, send_text: Route) -> APIRouter:
    """Routes of the real API, behind the api key check; `send_text` from `send_text_route`
    (it checks the key itself)."""

    async def api_key(request: Request) -> None:
        check_licence(sim, request)
        check_api_key(sim, request)

    router = APIRouter(dependencies=[Depends(api_key)])
    router.routes.append(send_text)
    add_instance_routes(router, sim)

    @router.post("/chat/findMessages/{instance}", response_model=None)
    async def find_messages(instance: str, request: Request) -> dict[str, Any] | Response:
        if not sim.config.find_messages_route:
            return Response(f"Cannot POST /chat/findMessages/{instance}", 404)
        found = existing(sim, instance)
        if not found.loaded:
            raise ContractError(500, _NOT_LOADED.format(method="fetchMessages"))
        answer: dict[str, Any] = _find_messages(sim, found, await _json_object(request))
        return answer

    @router.post("/webhook/set/{instance}", status_code=201)
    async def set_webhook(instance: str, request: Request) -> dict[str, Any]:
        existing(sim, instance)
        config = webhook_config(await _json_body(request))
        assert sim.webhooks is not None
        return sim.webhooks.set(instance, config)

    @router.get("/webhook/find/{instance}")
    async def find_webhook(instance: str) -> dict[str, Any] | None:
        existing(sim, instance)
        return sim.webhooks.find(instance) if sim.webhooks is not None else None

    return router


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise ContractError(400, ["Invalid JSON body"]) from exc
    if not isinstance(body, dict):
        raise ContractError(400, ["body must be an object"])
    return body


def _find_messages(sim: SimulatorState, instance: SimInstance, query: dict[str, Any]) -> Any:
    """Evolution's fetchMessages: the stored messages matching `where.key` (remoteJid,
    fromMe, id), newest first, `offset` (default 50) per `page` (default 1)."""
    where = _object(query.get("where"))
    key = _object(where.get("key"))
    stored = sim.messages(instance.name) if sim.config.keep_messages else []
    records = [
        _stored_record(m, instance)
        for m in sorted(stored, key=lambda m: m.received_at, reverse=True)
        if key.get("remoteJid") in (None, f"{m.number}@s.whatsapp.net")
        and key.get("id") in (None, m.provider_message_id)
        and key.get("fromMe") is not False  # every stored message is one we sent
    ]
    offset = max(1, _int(query.get("offset"), 50))
    page = max(1, _int(query.get("page"), 1))
    return {
        "messages": {
            "total": len(records),
            "pages": -(-len(records) // offset),
            "currentPage": page,
            "records": records[(page - 1) * offset : page * offset],
        }
    }


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _stored_record(message: ReceivedMessage, instance: SimInstance) -> dict[str, Any]:
    """One message as Evolution's database keeps it."""
    return {
        "id": f"c{message.provider_message_id.lower()}",
        "key": {
            "id": message.provider_message_id,
            "fromMe": True,
            "remoteJid": f"{message.number}@s.whatsapp.net",
        },
        "pushName": "Você",
        "messageType": "conversation",
        "message": {"conversation": message.text},
        "messageTimestamp": int(message.received_at),
        "instanceId": instance.instance_id,
        "source": "unknown",
        "contextInfo": None,
        "MessageUpdate": [],
    }


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError as exc:
        raise ContractError(400, ["Invalid JSON body"]) from exc


def webhook_config(body: Any) -> WebhookConfig:
    """`/webhook/set`'s body, checked as Evolution's webhookSchema does (400 otherwise); an
    enabled webhook with no events gets every event, a disabled one none."""
    hook = body.get("webhook") if isinstance(body, dict) else None
    if not isinstance(hook, dict):
        raise ContractError(400, ['instance requires property "webhook"'])
    enabled, url = hook.get("enabled"), hook.get("url")
    if not isinstance(enabled, bool) or not isinstance(url, str) or not url:
        raise ContractError(400, ['webhook requires property "enabled" and "url"'])
    events, headers = hook.get("events") or [], hook.get("headers") or {}
    if not isinstance(events, list) or not all(e in KNOWN_EVENTS for e in events):
        raise ContractError(400, ["webhook.events must be a list of known event names"])
    if not isinstance(headers, dict):
        raise ContractError(400, ["webhook.headers must be an object"])
    return WebhookConfig(
        url=url,
        enabled=enabled,
        events=tuple(events) if enabled else (),
        headers={str(k): str(v) for k, v in headers.items()},
        by_events=bool(hook.get("byEvents", False)),
    )


async def _send_text(sim: SimulatorState, name: str, request: Request) -> tuple[Response, str]:
    """The answer to one sendText and its outcome label for the stats."""
    instance = existing(sim, name)
    number, text, delay_ms = await _send_body(request)
    sim.note_delay(number, int(delay_ms))
    plan = sim.plan_send(instance)
    await asyncio.sleep((plan.latency_ms + delay_ms) / 1000)
    instance = existing(sim, name)  # it may have closed (or gone) meanwhile
    if plan.failure in AFTER_SENDING:
        return await _failure_after_sending(sim, plan.failure, instance, number, text, request)
    if plan.failure is not None:
        return await _injected_failure(sim, plan.failure, request)
    if not instance.loaded:
        raise ContractError(500, _NOT_LOADED.format(method="textMessage"))
    if instance.state != "open":
        if sim.on_whatsapp_cached(number):  # the send itself failed, inside its try
            raise ContractError(400, ["Error: Connection Closed"])
        raise ContractError(500, "Connection Closed")  # the number check failed first
    if not sim.is_on_whatsapp(number):
        jid = f"{number}@s.whatsapp.net"
        raise ContractError(400, [{"jid": jid, "exists": False, "number": number}])
    body = _JSON.encode(_accept(sim, instance, number, text)).encode()
    return Response(body, status_code=201, media_type="application/json"), "201"


async def _send_body(request: Request) -> tuple[str, str, float]:
    """`number`, `text` and the optional `delay` (ms) of a sendText body; 400 if invalid."""
    try:
        body = await request.json()
    except ValueError as exc:
        raise ContractError(400, ["Invalid JSON body"]) from exc
    if not isinstance(body, dict):
        raise ContractError(400, ['instance requires property "number"'])
    missing = [k for k in ("number", "text") if not isinstance(body.get(k), str) or not body[k]]
    if missing:
        raise ContractError(400, [f'instance requires property "{key}"' for key in missing])
    delay = body.get("delay")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int)):
        raise ContractError(400, ["delay must be an integer"])  # JSON schema `integer`
    delay_ms = float(delay) if delay is not None and delay > 0 else 0.0
    return body["number"], body["text"], delay_ms


async def _injected_failure(
    sim: SimulatorState, mode: FailureMode, request: Request
) -> tuple[Response, str]:
    if mode == "timeout":
        await hang(request, sim.config.hang_seconds)
        return Response(status_code=504), "timeout"
    if mode == "reset":
        return _ResetResponse(), "reset"
    if mode == "429":
        headers = {"Retry-After": f"{sim.config.retry_after_seconds:g}"}
        raise ContractError(429, ["Rate limit exceeded"], headers)
    if mode == "400":
        raise ContractError(400, ["Error: Connection Closed"])
    raise ContractError(500, ["Simulated internal server error"])


#: Failures injected after the message went out (see FailureMode).
AFTER_SENDING = frozenset({"late", "drop", "proxy_502", "unreadable"})


async def _failure_after_sending(
    sim: SimulatorState,
    mode: FailureMode,
    instance: SimInstance,
    number: str,
    text: str,
    request: Request,
) -> tuple[Response, str]:
    """The message goes out (recorded), then its answer goes wrong as `mode` says."""
    body = _JSON.encode(_accept(sim, instance, number, text)).encode()
    if mode == "late":
        await hang(request, sim.config.hang_seconds)
        return Response(body, status_code=201, media_type="application/json"), "late"
    if mode == "drop":
        return _ResetResponse(), mode
    if mode == "proxy_502":
        return Response(b"<html>502 Bad Gateway</html>", 502, media_type="text/html"), mode
    return Response(b"accepted", status_code=201, media_type="text/plain"), mode


def _accept(sim: SimulatorState, instance: SimInstance, number: str, text: str) -> dict[str, Any]:
    """Record the message; return the contract's 201 body."""
    message_id, now = sim.new_message_id(), time.time()
    sim.record_message(ReceivedMessage(instance.name, number, text, message_id, now))
    return sent_text_body(number, text, message_id, now, instance.instance_id)


def sent_text_body(
    number: str, text: str, message_id: str, now: float, instance_id: str = ""
) -> dict[str, Any]:
    """sendText's 201 body as Evolution v2 answers it (`now` in unix seconds)."""
    return {
        "key": {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": True, "id": message_id},
        "pushName": "",
        "status": "PENDING",
        "message": {"conversation": text},
        "contextInfo": None,
        "messageType": "conversation",
        "messageTimestamp": int(now),
        "instanceId": instance_id,
        "source": "unknown",
    }
