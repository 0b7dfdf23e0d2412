"""Webhooks out of the simulator, as Evolution v2.3.7 sends them.

Configured per instance with `POST /webhook/set/{instance}` (the contract route) or, for
every instance without its own, with the global `webhook_url`/`webhook_headers` knobs of
`PUT /_sim/config` (real Evolution's global webhook carries no headers; ours may, so tests
can authenticate). What is sent, read from webhook.controller.ts and
whatsapp.baileys.service.ts:

- envelope `{event, instance, data, destination, date_time, sender, server_url, apikey}`,
  `date_time` the local time with a `Z` suffix; `byEvents` appends `/connection-update` etc.
- a `jwt_key` header is replaced by `Authorization: Bearer <HS256 JWT>` (exp 10 minutes).
- an instance's state change: `open` → `connection.update` with wuid and profile; a close
  with a code Evolution does not reconnect from (401, 402, 403, 406) → `status.instance`
  (`closed`) then `connection.update` `close`; any other close is an auto-reconnect, which
  Evolution reports as `connecting`.
- an accepted sendText → `messages.update` `SERVER_ACK`, `DELIVERY_ACK`, `READ` after
  `receipt_delays_ms` (an instance with `never_delivers` stops after `SERVER_ACK`).
- `POST /_sim/inbound/{instance}` (a scripted reply) → `messages.upsert`, fromMe false.

Delivery retries connection failures and 5xx up to `MAX_ATTEMPTS` times (Evolution: 10,
from 5 s), not 400/401/403/404/422. Every attempt's result is kept for `GET /_sim/webhooks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx
import jwt

from worker.simulator.state import ReceivedMessage, SimInstance, SimulatorState

log = logging.getLogger("zapdispatch.simulator.webhooks")

#: Close codes Evolution does not reconnect from (`codesToNotReconnect`).
NO_RECONNECT_CODES = frozenset({401, 402, 403, 406})
MAX_ATTEMPTS = 4
FIRST_RETRY_SECONDS = 0.2
NON_RETRYABLE = frozenset({400, 401, 403, 404, 422})
TIMEOUT_SECONDS = 10.0
RECEIPT_STATUSES = ("SERVER_ACK", "DELIVERY_ACK", "READ")
#: `/webhook/set` accepts these event names (EventController.events, v2.3.7).
KNOWN_EVENTS = frozenset(
    [
        "APPLICATION_STARTUP",
        "QRCODE_UPDATED",
        "MESSAGES_SET",
        "MESSAGES_UPSERT",
        "MESSAGES_EDITED",
        "MESSAGES_UPDATE",
        "MESSAGES_DELETE",
        "SEND_MESSAGE",
        "SEND_MESSAGE_UPDATE",
        "CONTACTS_SET",
        "CONTACTS_UPSERT",
        "CONTACTS_UPDATE",
        "PRESENCE_UPDATE",
        "CHATS_SET",
        "CHATS_UPSERT",
        "CHATS_UPDATE",
        "CHATS_DELETE",
        "GROUPS_UPSERT",
        "GROUP_UPDATE",
        "GROUP_PARTICIPANTS_UPDATE",
        "CONNECTION_UPDATE",
        "LABELS_EDIT",
        "LABELS_ASSOCIATION",
        "CALL",
        "TYPEBOT_START",
        "TYPEBOT_CHANGE_STATUS",
        "REMOVE_INSTANCE",
        "LOGOUT_INSTANCE",
        "INSTANCE_CREATE",
        "INSTANCE_DELETE",
        "STATUS_INSTANCE",
    ]
)


@dataclass(frozen=True)
class WebhookConfig:
    """One instance's webhook, as `/webhook/set` stores it (events in CONFIG_STYLE)."""

    url: str
    enabled: bool = True
    events: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    by_events: bool = False

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or config_style(event) in self.events)


@dataclass(frozen=True)
class Attempt:
    """One POST of one webhook: the HTTP status, or None when it got no answer."""

    event: str
    instance: str
    url: str
    status: int | None
    at: float


def config_style(event: str) -> str:
    """`connection.update` → `CONNECTION_UPDATE` (Evolution's `we`)."""
    return event.replace(".", "_").replace("-", "_").upper()


def suffix_of(event: str) -> str:
    """`connection.update` → `connection-update` (Evolution's `transformedWe`)."""
    return config_style(event).replace("_", "-").lower()


def local_date_time(now: float) -> str:
    """Evolution's `date_time`: local wall time, ISO with milliseconds, and a (wrong) `Z`."""
    return datetime.fromtimestamp(now).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def jwt_headers(headers: dict[str, str], now: float) -> dict[str, str]:
    """A `jwt_key` header becomes `Authorization: Bearer <HS256 JWT>` signed with it."""
    if "jwt_key" not in headers:
        return dict(headers)
    out = {k: v for k, v in headers.items() if k != "jwt_key"}
    payload = {"iat": int(now), "exp": int(now) + 600, "app": "evolution", "action": "webhook"}
    out["Authorization"] = f"Bearer {jwt.encode(payload, headers['jwt_key'], algorithm='HS256')}"
    return out


class WebhookEmitter:
    """Sends the simulator's webhooks from its event loop (fire and forget, retried)."""

    def __init__(self, sim: SimulatorState, server_url: str = "http://127.0.0.1:8081") -> None:
        self._sim = sim
        self._server_url = server_url
        self._configs: dict[str, WebhookConfig] = {}
        self._attempts: list[Attempt] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    # --- configuration -------------------------------------------------------------------

    def set(self, instance: str, config: WebhookConfig) -> dict[str, Any]:
        self._configs[instance] = config
        return self.find(instance) or {}

    def find(self, instance: str) -> dict[str, Any] | None:
        config = self._configs.get(instance)
        if config is None:
            return None
        body = asdict(config)
        return {**body, "events": list(config.events), "instanceId": instance}

    def attempts(self) -> list[dict[str, Any]]:
        return [asdict(a) for a in self._attempts]

    def _target(self, instance: str, event: str) -> tuple[str, dict[str, str]] | None:
        config = self._configs.get(instance)
        if config is None and self._sim.config.webhook_url:
            config = WebhookConfig(
                self._sim.config.webhook_url, headers=dict(self._sim.config.webhook_headers)
            )
        if config is None or not config.wants(event):
            return None
        url = f"{config.url}/{suffix_of(event)}" if config.by_events else config.url
        return url, config.headers

    # --- what happens --------------------------------------------------------------------

    def instance_changed(self, old: SimInstance | None, new: SimInstance) -> None:
        """Webhooks for a state change, as Evolution's connectionUpdate sends them."""
        if old is not None and old.state == new.state:
            return
        code = new.disconnection_reason
        if new.state == "open":
            self.emit(
                new,
                "connection.update",
                {**self._profile(new), "state": "open", "statusReason": 200},
            )
        elif new.state == "close" and code in NO_RECONNECT_CODES:
            # One after the other, in this order (two independent posts could arrive reversed).
            self.emit_in_order(
                new,
                [
                    (
                        "status.instance",
                        {
                            "instance": new.name,
                            "status": "closed",
                            "disconnectionAt": local_date_time(time.time()),
                            "disconnectionReasonCode": code,
                            "disconnectionObject": "{}",
                        },
                    ),
                    (
                        "connection.update",
                        {"instance": new.name, "state": "close", "statusReason": code},
                    ),
                ],
            )
        elif new.state == "refused":
            self.emit(
                new,
                "connection.update",
                {**self._profile(new), "state": "refused", "statusReason": 428},
            )
        else:  # connecting, or a close Evolution reconnects from by itself
            self.emit(
                new,
                "connection.update",
                {"instance": new.name, "state": "connecting", "statusReason": code or 200},
            )

    def message_accepted(self, instance: SimInstance, message: ReceivedMessage) -> None:
        """Receipts for an accepted sendText, after `receipt_delays_ms` (none when unset)."""
        delays = self._sim.config.receipt_delays_ms
        if not delays:
            return
        steps = RECEIPT_STATUSES[:1] if instance.never_delivers else RECEIPT_STATUSES
        for status, delay_ms in zip(steps, delays, strict=False):
            data = {
                "keyId": message.provider_message_id,
                "remoteJid": f"{message.number}@s.whatsapp.net",
                "fromMe": True,
                "participant": None,
                "status": status,
                "instanceId": instance.instance_id,
                "messageId": uuid.uuid4().hex[:25],
            }
            self.emit(instance, "messages.update", data, delay_seconds=delay_ms / 1000)

    def inbound(self, instance: SimInstance, number: str, text: str) -> str:
        """A contact's message to `instance` (`messages.upsert`); returns its id."""
        message_id = f"3A{uuid.uuid4().hex[:18].upper()}"
        self.emit(
            instance,
            "messages.upsert",
            {
                "key": {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": False, "id": message_id},
                "pushName": "Contact",
                "status": "DELIVERY_ACK",
                "message": {"conversation": text},
                "contextInfo": None,
                "messageType": "conversation",
                "messageTimestamp": int(time.time()),
                "instanceId": instance.instance_id,
                "source": "android",
            },
        )
        return message_id

    @staticmethod
    def _profile(instance: SimInstance) -> dict[str, Any]:
        return {
            "instance": instance.name,
            "wuid": f"{instance.number}@s.whatsapp.net",
            "profileName": instance.name,
            "profilePictureUrl": None,
        }

    # --- sending -------------------------------------------------------------------------

    def emit(
        self, instance: SimInstance, event: str, data: Any, *, delay_seconds: float = 0.0
    ) -> None:
        self.emit_in_order(instance, [(event, data)], delay_seconds=delay_seconds)

    def emit_in_order(
        self,
        instance: SimInstance,
        events: list[tuple[str, Any]],
        *,
        delay_seconds: float = 0.0,
    ) -> None:
        """Post `events` one after the other (each retried before the next is posted)."""
        posts: list[tuple[str, dict[str, str], dict[str, Any]]] = []
        for event, data in events:
            target = self._target(instance.name, event)
            if target is None:
                continue
            envelope = {
                "event": event,
                "instance": instance.name,
                "data": data,
                "destination": target[0],
                "date_time": local_date_time(time.time()),
                "sender": f"{instance.number}@s.whatsapp.net",
                "server_url": self._server_url,
                "apikey": None,
            }
            posts.append((target[0], target[1], envelope))
        if not posts:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a change made outside the server's loop: nothing to send from
            names = ", ".join(event for event, _ in events)
            log.warning("webhook %s for %s not sent: no event loop", names, instance.name)
            return
        task = loop.create_task(self._deliver_all(posts, delay_seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_all(
        self, posts: list[tuple[str, dict[str, str], dict[str, Any]]], delay: float
    ) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        for url, headers, envelope in posts:
            await self._deliver(url, headers, envelope)

    async def _deliver(self, url: str, headers: dict[str, str], envelope: dict[str, Any]) -> None:
        client = self._http()
        for attempt in range(MAX_ATTEMPTS):
            status = await self._post(client, url, headers, envelope)
            if status is not None and (status < 300 or status in NON_RETRYABLE):
                return
            await asyncio.sleep(FIRST_RETRY_SECONDS * 2**attempt)
        log.warning("webhook %s to %s failed %d times", envelope["event"], url, MAX_ATTEMPTS)

    async def _post(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], envelope: Any
    ) -> int | None:
        status: int | None = None
        # Any failure is "no answer" (a receiver going away mid-request can raise more than
        # httpx's errors); it is retried like Evolution retries a network error.
        with contextlib.suppress(Exception):
            answer = await client.post(
                url, json=envelope, headers=jwt_headers(headers, time.time())
            )
            status = answer.status_code
        self._attempts.append(
            Attempt(envelope["event"], envelope["instance"], url, status, time.time())
        )
        return status

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        return self._client

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            await self._client.aclose()
