"""Evolution's webhook envelope and the events this project reads, as typed values.

Shapes read from Evolution v2.3.7 (webhook.controller.ts `emit`, whatsapp.baileys.service.ts):
the envelope is `{event, instance, data, destination, date_time, sender, server_url, apikey}`;
`event` is dotted (`connection.update`), and the same names in Evolution's configuration
style (`CONNECTION_UPDATE`) or its `byEvents` URL suffix style (`connection-update`) are read
as the same event. `date_time` is the server's local time with a `Z` suffix, so it is not
read as a time; `apikey` may carry the instance's token and is never kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.enums import Receipt
from worker.webhooks.errors import BodyNotJson, MalformedWebhook

#: Evolution's `date_time` format (`new Date(...).toISOString()` of a local time).
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")

#: Evolution's `status.instance` data: a session closed for good.
CLOSED_STATUS = "closed"


class Event(StrEnum):
    """Events this project acts on, in Evolution's configuration spelling."""

    CONNECTION_UPDATE = "CONNECTION_UPDATE"
    STATUS_INSTANCE = "STATUS_INSTANCE"
    MESSAGES_UPDATE = "MESSAGES_UPDATE"
    MESSAGES_UPSERT = "MESSAGES_UPSERT"
    SEND_MESSAGE = "SEND_MESSAGE"


#: `messages.update` statuses (Evolution's renderStatus.ts) → receipts; PENDING says nothing.
RECEIPTS = {
    "SERVER_ACK": Receipt.SERVER_ACK,
    "DELIVERY_ACK": Receipt.DELIVERED,
    "READ": Receipt.READ,
    "PLAYED": Receipt.PLAYED,
    "ERROR": Receipt.ERROR,
}


def event_key(name: str) -> str:
    """`connection.update`, `CONNECTION_UPDATE`, `connection-update` → `CONNECTION_UPDATE`
    (Evolution's own transform: `.` and `-` to `_`, upper case)."""
    return name.replace(".", "_").replace("-", "_").upper()


@dataclass(frozen=True, slots=True)
class Envelope:
    """One webhook: `event` in `event_key` form, the instance name and the event's data."""

    event: str
    instance: str
    data: Mapping[str, Any]
    #: Evolution's `date_time` (local time with a `Z`): only compared with other webhooks'
    date_time: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    """`connection.update` or `status.instance`: Evolution's state and reason code."""

    state: str
    reason: int | None


@dataclass(frozen=True, slots=True)
class ReceiptUpdate:
    """`messages.update` about a message we sent: Evolution's message id and its receipt."""

    key_id: str
    receipt: Receipt


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """`messages.upsert` from a contact: the digits of its JID and the text (may be empty)."""

    digits: str
    text: str


def parse_body(raw: bytes) -> Envelope:
    """The envelope in `raw` (JSON); raises MalformedWebhook."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyNotJson(f"body is not JSON: {exc}") from None
    return parse_envelope(body)


def parse_envelope(body: object) -> Envelope:
    if not isinstance(body, dict):
        raise MalformedWebhook("body is not a JSON object")
    event, instance, data = body.get("event"), body.get("instance"), body.get("data")
    if not isinstance(event, str) or not event:
        raise MalformedWebhook("`event` must be a non-empty string")
    if not isinstance(instance, str) or not instance:
        raise MalformedWebhook("`instance` must be a non-empty string")
    if not isinstance(data, dict | list):
        raise MalformedWebhook("`data` must be an object")
    sent = body.get("date_time")
    return Envelope(
        event_key(event),
        instance,
        data if isinstance(data, dict) else {"list": data},
        sent if isinstance(sent, str) and DATE_TIME.fullmatch(sent) else None,
    )


def _reason(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedWebhook("reason code must be an integer")
    try:
        return int(value)
    except ValueError:
        raise MalformedWebhook("reason code must be an integer") from None


def connection_change(envelope: Envelope) -> ConnectionChange | None:
    """The state change, or None for a `status.instance` that is not a close."""
    data = envelope.data
    if envelope.event == Event.STATUS_INSTANCE:
        if data.get("status") != CLOSED_STATUS:
            return None
        return ConnectionChange("close", _reason(data.get("disconnectionReasonCode")))
    state = data.get("state")
    if not isinstance(state, str) or not state:
        raise MalformedWebhook("connection.update without `data.state`")
    return ConnectionChange(state, _reason(data.get("statusReason")))


def receipt_update(envelope: Envelope) -> ReceiptUpdate | None:
    """The receipt of a message we sent; None for other messages and other statuses."""
    data = envelope.data
    raw_key = data.get("key")
    key: Mapping[str, Any] = raw_key if isinstance(raw_key, dict) else {}
    key_id = data.get("keyId") or key.get("id")
    status = data.get("status")
    if not isinstance(key_id, str) or not key_id or not isinstance(status, str):
        raise MalformedWebhook("messages.update needs `data.keyId` and `data.status`")
    from_me = data.get("fromMe", key.get("fromMe", True))
    if from_me is False or status not in RECEIPTS:
        return None
    return ReceiptUpdate(key_id, RECEIPTS[status])


def inbound_message(envelope: Envelope) -> InboundMessage | None:
    """A message a contact wrote to us; None for our own messages, groups and broadcasts."""
    data = envelope.data
    key = data.get("key")
    if not isinstance(key, dict) or not isinstance(key.get("remoteJid"), str):
        raise MalformedWebhook("messages.upsert needs `data.key.remoteJid`")
    if key.get("fromMe") is not False:
        return None
    user, _, server = key["remoteJid"].partition("@")
    if server not in ("s.whatsapp.net", "c.us") or not user.isdigit():
        return None  # groups, broadcasts, lids: not a contact's phone
    return InboundMessage(user, message_text(data.get("message")))


def message_text(message: object) -> str:
    """`conversation` or `extendedTextMessage.text`; empty for media and the rest."""
    if not isinstance(message, dict):
        return ""
    text = message.get("conversation")
    if isinstance(text, str):
        return text
    extended = message.get("extendedTextMessage")
    if isinstance(extended, dict) and isinstance(extended.get("text"), str):
        return str(extended["text"])
    return ""
