"""Alerts raised by the health check, and the notifications owed for them (an outbox).

An alert is one occurrence of a condition (`kind` about `subject`) from the run that saw it
start (`opened_at`) to the run that saw it clear (`resolved_at`). At most one alert per
(kind, subject) is open at a time: a partial unique index enforces it, so even two racing
health checks cannot open it twice.

Every message owed to a channel (Slack, email) is a row of `alert_notifications`, written in
the same transaction as the alert change that made it due, and stamped `sent_at` once the
channel accepted it. A channel that is down leaves its rows pending for the next run; a
restart neither repeats nor forgets them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


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


class Alert(Base):
    """One occurrence of an alert condition."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "uq_alerts_open_kind_subject",
            "kind",
            "subject",
            unique=True,
            postgresql_where=sql_text("resolved_at IS NULL"),
        ),
        Index("ix_alerts_opened_at", "opened_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_notified_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reminders: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AlertNotification(Base):
    """A message owed to one channel; pending while `sent_at` is null."""

    __tablename__ = "alert_notifications"
    __table_args__ = (
        Index(
            "ix_alert_notifications_pending",
            "created_at",
            postgresql_where=sql_text("sent_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    alert_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
