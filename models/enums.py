"""States of messages and instances, as the README and the API name them (and the emoji
people see for an instance status); the kinds, severities and channels of alerts."""

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


class AttemptOutcome(StrEnum):
    """What is proven about one send attempt. Every outcome but `not_sent` spent the slot
    it was given: the hourly and daily counters rebuilt from PostgreSQL count them."""

    SENDING = "sending"  # in flight
    SENT = "sent"  # Evolution answered 2xx, or its message look-up found the message
    NOT_SENT = "not_sent"  # provably not sent (no connection, not fully written, an error
    #                        Evolution answered before sending): the slot was given back
    UNKNOWN = "unknown"  # no trustworthy answer: looked up before anything is sent again
    ABSENT = "absent"  # the look-up found no such message twice: sent again on a new slot
    UNVERIFIED = "unverified"  # could not be looked up; sent again (UNCERTAIN_SEND_POLICY)


#: How people see an instance status (the API's `status_emoji`, CLI tables, alert texts).
STATUS_EMOJI: dict[str, str] = {
    InstanceStatus.CONNECTED: "🟢",
    InstanceStatus.DISCONNECTED: "🔴",
    InstanceStatus.BANNED: "⛔",
    InstanceStatus.CONNECTING: "🟡",
}
UNKNOWN_EMOJI = "❓"


def status_emoji(status: str) -> str:
    """The emoji of an instance status (`STATUS_EMOJI`); ❓ for anything else."""
    return STATUS_EMOJI.get(status, UNKNOWN_EMOJI)


class AlertSeverity(StrEnum):
    """How bad it is. Every alert is logged; warning and above also go to Slack."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    """The rows of the alert table."""

    INSTANCE_OFFLINE = "instance_offline"
    INSTANCE_BANNED = "instance_banned"
    CAPACITY_HIGH = "capacity_high"
    ALL_OFFLINE = "all_offline"
    CIRCUIT_OPEN = "circuit_open"
    NOT_DELIVERING = "not_delivering"  # accepts sends, no delivery receipts (webhooks)
    SENDING_PAUSED = "sending_paused"  # an operator paused all sending (a reminder)
    EVOLUTION_LICENCE = "evolution_licence"  # Evolution answers 503 LICENSE_REQUIRED


class NotificationEvent(StrEnum):
    """Why a notification is owed: the alert opened, still lasts, or cleared."""

    OPENED = "opened"
    REMINDER = "reminder"
    RESOLVED = "resolved"


class Channel(StrEnum):
    SLACK = "slack"
    EMAIL = "email"


#: `subject` of alerts about the whole pool (e.g. all instances offline).
POOL_SUBJECT = ""
