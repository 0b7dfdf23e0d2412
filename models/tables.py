"""SQLAlchemy 2 tables: instances, contacts and messages with their events, alerts and their
notification outbox, and the sending controls (pauses, the not-on-WhatsApp memory). Only the
stores (`models/*_store.py`) and the migrations touch these classes; everything else
receives the frozen views of `models.views`."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base
from models.enums import AttemptOutcome, InstanceStatus, MessageState, Receipt

_STATUS = Enum(
    InstanceStatus,
    name="instance_status",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda e: [m.value for m in e],
)
_STATE = Enum(
    MessageState,
    name="message_state",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda e: [m.value for m in e],
)

_RECEIPT = Enum(
    Receipt,
    name="receipt",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda e: [m.value for m in e],
)

_OUTCOME = Enum(
    AttemptOutcome,
    name="attempt_outcome",
    native_enum=False,
    create_constraint=True,
    length=16,
    values_callable=lambda e: [m.value for m in e],
)


class Instance(Base):
    """One WhatsApp number hosted on Evolution API."""

    __tablename__ = "instances"
    __table_args__ = (
        CheckConstraint("hourly_cap > 0", name="hourly_cap_positive"),
        CheckConstraint("daily_cap > 0", name="daily_cap_positive"),
        CheckConstraint("consecutive_failures >= 0", name="failures_non_negative"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    phone: Mapped[str] = mapped_column(String(32))
    status: Mapped[InstanceStatus] = mapped_column(_STATUS, default=InstanceStatus.DISCONNECTED)
    status_reason: Mapped[str | None] = mapped_column(String(200))
    hourly_cap: Mapped[int] = mapped_column(Integer)
    daily_cap: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sql_text("true"))
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the observation behind `status` was made (a poll's start, a webhook's arrival):
    # an older observation arriving later does not overwrite a newer one.
    status_observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_failures: Mapped[int] = mapped_column(
        Integer, default=0, server_default=sql_text("0")
    )
    circuit_opened_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Day 1 of the warm-up ramp (WARMUP_SCHEDULE); NULL: since `created_at`.
    warmup_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Contact(Base):
    """A recipient (a doctor), keyed by the producer's contact id, with its sticky number."""

    __tablename__ = "contacts"
    # Inbound replies and opt-outs find contacts by phone.
    __table_args__ = (Index("ix_contacts_phone", "phone"),)

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    phone: Mapped[str] = mapped_column(String(32))
    preferred_instance: Mapped[str | None] = mapped_column(
        String(64),
        ForeignKey("instances.name", onupdate="CASCADE", ondelete="SET NULL"),
        index=True,
    )
    preferred_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The last message the contact sent us (a `messages.upsert` webhook, fromMe false).
    last_reply_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the contact opted out (an OPT_OUT_KEYWORDS reply or the CLI); nothing is sent
    # to it, by contact id or by phone, while it is set.
    opted_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OptOut(Base):
    """A phone that asked not to be messaged (an OPT_OUT_KEYWORDS reply, or an operator by
    phone). Kept apart from contacts: a contact's phone may change, the opt-out must not."""

    __tablename__ = "opt_outs"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Message(Base):
    """One accepted message and everything that happened to it."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("requeues >= 0", name="requeues_non_negative"),
        # The beat sweep's three queries, one state each. Partial: each holds the rows in its
        # state only (vacuum clears the rest), so it grows with the backlog, not with the
        # history, and recording `sent` writes no entry in any of them.
        Index(
            "ix_messages_waiting_not_before",
            "not_before",
            postgresql_where=sql_text("state = 'waiting'"),
        ),
        Index(
            "ix_messages_queued_updated_at",
            "updated_at",
            postgresql_where=sql_text("state = 'queued'"),
        ),
        Index(
            "ix_messages_sending_claimed_at",
            "claimed_at",
            postgresql_where=sql_text("state = 'sending'"),
        ),
        # Dashboard: sends per instance per hour over the last 24 h.
        Index("ix_messages_instance_sent_at", "instance", "sent_at"),
        # `zapdispatch status`: the most recent messages.
        Index("ix_messages_created_at", "created_at"),
        # Pausing, cancelling and listing one campaign's messages.
        Index(
            "ix_messages_campaign_state",
            "campaign",
            "state",
            postgresql_where=sql_text("campaign IS NOT NULL"),
        ),
        # Receipts (webhooks) find their message by Evolution's message id.
        Index(
            "ix_messages_provider_message_id",
            "provider_message_id",
            postgresql_where=sql_text("provider_message_id IS NOT NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    contact_id: Mapped[str | None] = mapped_column(
        String(128), ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    phone: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[MessageState] = mapped_column(_STATE, default=MessageState.QUEUED)
    instance: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    requeues: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The process that made the latest claim (models/claimant.py), read while `sending`.
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    campaign: Mapped[str | None] = mapped_column(String(100))
    receipt: Mapped[Receipt | None] = mapped_column(_RECEIPT)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why a `waiting` message waits, when not for capacity: `paused` (woken on resume),
    # `quiet_hours` (the recipient's night). NULL: capacity.
    wait_reason: Mapped[str | None] = mapped_column(String(16))


class InstanceEvent(Base):
    """History of an instance's status changes (written by the health check)."""

    __tablename__ = "instance_events"
    __table_args__ = (Index("ix_instance_events_instance_created_at", "instance", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    instance: Mapped[str] = mapped_column(String(64))
    old_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SendAttempt(Base):
    """One claim of a message for a send on one instance, and what is proven about it.

    A message has at most one attempt `sending` (the claim guard) and at most one `unknown`
    that is still to be looked up. The limiter's counters are rebuilt from these rows."""

    __tablename__ = "send_attempts"
    __table_args__ = (
        Index("ix_send_attempts_message_id", "message_id"),
        # Rebuilding the hour's and day's counters reads the last day of attempts.
        Index("ix_send_attempts_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE")
    )
    instance: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[AttemptOutcome] = mapped_column(_OUTCOME)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_message_id: Mapped[str | None] = mapped_column(String(128))
    #: How many message look-ups found nothing (an `unknown` attempt becomes `absent` at 2).
    lookups: Mapped[int] = mapped_column(Integer, default=0, server_default=sql_text("0"))
    detail: Mapped[str | None] = mapped_column(Text)


class MessageEvent(Base):
    """Append-only history of one message beyond what its row keeps: each wait (why, and
    until when), each attempt that failed and went back to the queue, each terminal failure
    or expiry. Acceptance, the send and receipts are read from the message row itself."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_message_id_at", "message_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("messages.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(32))
    instance: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class QueueSample(Base):
    """Messages per non-terminal state, counted by the beat health check (the pool chart)."""

    __tablename__ = "queue_samples"

    sampled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)


# -- alerts raised by the health check, and the notifications owed for them (an outbox) ----
# An alert is one occurrence of a condition (`kind` about `subject`) from the run that saw it
# start (`opened_at`) to the run that saw it clear (`resolved_at`). At most one alert per
# (kind, subject) is open at a time: a partial unique index enforces it, so even two racing
# health checks cannot open it twice.
#
# Every message owed to a channel (Slack, email) is a row of `alert_notifications`, written in
# the same transaction as the alert change that made it due, and stamped `sent_at` once the
# channel accepted it. A channel that is down leaves its rows pending for the next run; a
# restart neither repeats nor forgets them.


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


# -- sending controls: pauses and the not-on-WhatsApp memory --------------------------------


#: Pause scopes: all sending, one instance, or one campaign.
PAUSE_SCOPES = ("all", "instance", "campaign")


class Pause(Base):
    """One pause in force: `scope` `all` (target ''), `instance` or `campaign` (target its
    name). Resuming deletes the row. At most one row per (scope, target)."""

    __tablename__ = "pauses"
    __table_args__ = (
        CheckConstraint("scope IN ('all', 'instance', 'campaign')", name="pause_scope"),
        CheckConstraint("(scope = 'all') = (target = '')", name="pause_target"),
    )

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotOnWhatsApp(Base):
    """A phone Evolution reported not on WhatsApp, and when: later messages to it fail at
    once, without asking again, until NOT_ON_WHATSAPP_TTL_DAYS have passed."""

    __tablename__ = "not_on_whatsapp"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str | None] = mapped_column(Text)
