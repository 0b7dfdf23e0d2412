"""Reads for operators (the console and `zapdispatch messages`): one message with every
column the API shows, filtered pages of messages newest first, and one message's timeline.

Paging is by keyset: `before` names the last message of the previous page, and the next
page holds the messages strictly older in (created_at, id) order, so a page never skips or
repeats a row while new messages arrive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select, tuple_
from sqlalchemy.orm import Session, sessionmaker

from models.enums import MessageState, Receipt
from models.message_values import UnknownMessage
from models.tables import Message, MessageEvent

#: Largest page `list` returns.
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A message as operators see it (the phone unmasked: callers mask it)."""

    id: uuid.UUID
    state: MessageState
    instance: str | None
    contact_id: str | None
    phone: str | None
    campaign: str | None
    provider_message_id: str | None
    receipt: Receipt | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    not_before: datetime | None
    attempts: int
    requeues: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Each field set narrows the list; `before` is a message id (the previous page's last)."""

    state: MessageState | None = None
    contact_id: str | None = None
    campaign: str | None = None
    instance: str | None = None
    before: uuid.UUID | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[MessageRecord]
    next_before: uuid.UUID | None  # pass as `before` for the next page; None: last page


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """One step of a message's life. `kind`: accepted, requeued, waiting, attempt_failed,
    sent, delivered, read, failed, expired, cancelled."""

    at: datetime
    kind: str
    instance: str | None = None
    reason: str | None = None
    until: datetime | None = None


_COLUMNS = (
    Message.id,
    Message.state,
    Message.instance,
    Message.contact_id,
    Message.phone,
    Message.campaign,
    Message.provider_message_id,
    Message.receipt,
    Message.created_at,
    Message.updated_at,
    Message.sent_at,
    Message.delivered_at,
    Message.read_at,
    Message.not_before,
    Message.attempts,
    Message.requeues,
    Message.last_error,
)


def _record(row: object) -> MessageRecord:
    values = {column.key: getattr(row, column.key) for column in _COLUMNS}
    values["state"] = MessageState(values["state"])
    if values["receipt"] is not None:
        values["receipt"] = Receipt(values["receipt"])
    return MessageRecord(**values)


class MessageQueryStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, message_id: uuid.UUID) -> MessageRecord:
        """Raises `UnknownMessage`."""
        with self._sessions() as session:
            row = session.execute(select(*_COLUMNS).where(Message.id == message_id)).first()
        if row is None:
            raise UnknownMessage(f"no message {message_id}")
        return _record(row)

    def page(self, where: MessageFilter) -> MessagePage:
        """Newest first, at most `where.limit` (1..MAX_PAGE). An unknown `before` id gives
        an empty page."""
        limit = max(1, min(where.limit, MAX_PAGE))
        query: Select[tuple[object, ...]] = select(*_COLUMNS)
        for column, value in (
            (Message.state, where.state),
            (Message.contact_id, where.contact_id),
            (Message.campaign, where.campaign),
            (Message.instance, where.instance),
        ):
            if value is not None:
                query = query.where(column == value)
        with self._sessions() as session:
            if where.before is not None:
                anchor = session.execute(
                    select(Message.created_at, Message.id).where(Message.id == where.before)
                ).first()
                if anchor is None:
                    return MessagePage([], None)
                query = query.where(
                    tuple_(Message.created_at, Message.id) < tuple_(anchor[0], anchor[1])
                )
            rows = session.execute(
                query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit + 1)
            ).all()
        records = [_record(row) for row in rows[:limit]]
        more = len(rows) > limit
        return MessagePage(records, records[-1].id if more and records else None)

    def timeline(self, message_id: uuid.UUID) -> list[TimelineEvent]:
        """Accepted, each recorded wait and failed attempt, sent, receipts and the end, in
        time order. Raises `UnknownMessage`."""
        message = self.get(message_id)
        with self._sessions() as session:
            rows = session.execute(
                select(
                    MessageEvent.at,
                    MessageEvent.kind,
                    MessageEvent.instance,
                    MessageEvent.reason,
                    MessageEvent.until,
                )
                .where(MessageEvent.message_id == message_id)
                .order_by(MessageEvent.at, MessageEvent.id)
            ).all()
        events = [TimelineEvent(r.at, r.kind, r.instance, r.reason, r.until) for r in rows]
        return _with_row_events(message, events)


def _with_row_events(message: MessageRecord, recorded: list[TimelineEvent]) -> list[TimelineEvent]:
    """The recorded events plus what the message row itself dates: acceptance, the send,
    the receipts, and an end the events do not hold (a rejected input, a cancellation)."""
    kinds = {event.kind for event in recorded}
    derived = [TimelineEvent(message.created_at, "accepted")]
    if message.sent_at is not None:
        derived.append(TimelineEvent(message.sent_at, "sent", message.instance))
    if message.delivered_at is not None:
        derived.append(TimelineEvent(message.delivered_at, "delivered", message.instance))
    if message.read_at is not None:
        derived.append(TimelineEvent(message.read_at, "read", message.instance))
    end = message.state.value
    if message.state.terminal and message.state is not MessageState.SENT and end not in kinds:
        derived.append(TimelineEvent(message.updated_at, end, reason=message.last_error))
    order = {"accepted": 0}
    return sorted([*derived, *recorded], key=lambda e: (e.at, order.get(e.kind, 1)))
