"""States of messages and instances, as `../shared/interface.md` names them."""

from __future__ import annotations

from enum import StrEnum


class MessageState(StrEnum):
    """Life cycle of one message. `sent`, `failed` and `expired` are terminal."""

    QUEUED = "queued"
    WAITING = "waiting"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({MessageState.SENT, MessageState.FAILED, MessageState.EXPIRED})
PENDING_STATES = frozenset({MessageState.QUEUED, MessageState.WAITING})


class InstanceStatus(StrEnum):
    """Connection status of one WhatsApp number."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    BANNED = "banned"
