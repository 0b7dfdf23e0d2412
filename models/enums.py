"""States of messages and instances, as `../shared/interface.md` names them."""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    """Life cycle of one message. `sent`, `failed`, `expired` and `cancelled` are terminal."""

    QUEUED = "queued"
    WAITING = "waiting"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # cancelled by an operator before it was sent

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {MessageState.SENT, MessageState.FAILED, MessageState.EXPIRED, MessageState.CANCELLED}
)
PENDING_STATES = frozenset({MessageState.QUEUED, MessageState.WAITING})


class InstanceStatus(StrEnum):
    """Connection status of one WhatsApp number."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    BANNED = "banned"


class Receipt(StrEnum):
    """What WhatsApp reported about a sent message, in the order it can only move forward
    (`error` ends it)."""

    SERVER_ACK = "server_ack"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    ERROR = "error"
