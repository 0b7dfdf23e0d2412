"""Frozen values handed out by the stores: no live ORM object leaves `models/`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from models.enums import (
    AlertKind,
    AlertSeverity,
    Channel,
    InstanceStatus,
    MessageState,
    NotificationEvent,
)


class CircuitState(StrEnum):
    """Per-instance circuit breaker: `open` keeps the instance out of routing."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def to_datetime(unix_seconds: float) -> datetime:
    """Unix seconds → aware UTC datetime."""
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


@dataclass(frozen=True, slots=True)
class InstanceView:
    name: str
    phone: str
    status: InstanceStatus
    hourly_cap: int
    daily_cap: int
    active: bool
    consecutive_failures: int = 0
    circuit_opened_at: datetime | None = None
    last_message_at: datetime | None = None
    status_changed_at: datetime | None = None
    status_reason: str | None = None
    # Day 1 of its warm-up ramp: `warmup_started_at`, or when it was added.
    warmup_since: datetime | None = None

    def circuit(self, now: float, *, threshold: int, cooldown_seconds: float) -> CircuitState:
        """Breaker state at `now` (unix seconds), opened at `threshold` failures."""
        if self.consecutive_failures < threshold:
            return CircuitState.CLOSED
        opened = self.circuit_opened_at.timestamp() if self.circuit_opened_at else 0.0
        return CircuitState.OPEN if now - opened < cooldown_seconds else CircuitState.HALF_OPEN

    @property
    def connected(self) -> bool:
        return self.status is InstanceStatus.CONNECTED


@dataclass(frozen=True, slots=True)
class MessageView:
    id: uuid.UUID
    contact_id: str | None
    phone: str | None
    text: str
    state: MessageState
    instance: str | None
    provider_message_id: str | None
    attempts: int
    requeues: int
    idempotency_key: str | None
    not_before: datetime | None
    expires_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One recorded change of an instance's status."""

    instance: str
    old: InstanceStatus
    new: InstanceStatus
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class AlertView:
    """One alert. `pending` counts its notifications not yet accepted by their channel."""

    id: int
    kind: AlertKind
    subject: str
    severity: AlertSeverity
    title: str
    message: str
    opened_at: datetime
    last_notified_at: datetime
    reminders: int
    resolved_at: datetime | None
    pending: int = 0


@dataclass(frozen=True, slots=True)
class PendingNotification:
    """A message owed to `channel`, with what it needs to be rendered."""

    id: int
    alert_id: int
    kind: AlertKind
    subject: str
    severity: AlertSeverity
    channel: Channel
    event: NotificationEvent
    title: str
    body: str
    created_at: datetime
    attempts: int


@dataclass(frozen=True, slots=True)
class AlertText:
    """What an alert says: a one-line title and a body (plain text, unescaped)."""

    title: str
    body: str
