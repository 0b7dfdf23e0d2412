"""Values that cross the message store's boundary: inputs, outcomes and errors."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Row

from models.enums import MessageState
from models.tables import Message
from models.views import MessageView


class IdempotencyConflict(ValueError):
    """The idempotency key was used before for a different message."""


class UnknownMessage(LookupError):
    """No message has that id."""


class ClaimOutcome(StrEnum):
    CLAIMED = "claimed"
    NOT_PENDING = "not_pending"  # another worker has it, or it is already terminal
    PREFERENCE_CHANGED = "preference_changed"  # the contact's sticky number moved meanwhile
    INSTANCE_UNUSABLE = "instance_unusable"  # banned or deactivated since routing looked


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A validated message, ready to be recorded."""

    id: uuid.UUID
    contact_id: str
    phone: str
    text: str
    content_hash: str
    idempotency_key: str | None
    expires_at: datetime
    created_at: datetime
    campaign: str | None = None  # the producer's label for grouping, pausing, cancelling


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """Input that failed validation; recorded `failed` so nothing accepted is silently dropped."""

    id: uuid.UUID
    raw_phone: str
    text: str
    content_hash: str
    idempotency_key: str | None
    reason: str
    now: datetime
    campaign: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownAttempt:
    """A send attempt whose outcome is not known: Evolution is asked about it before the
    message is sent again. `lookups` counts the look-ups that found nothing so far."""

    id: int
    instance: str
    started_at: datetime
    lookups: int


@dataclass(frozen=True, slots=True)
class RoutingInput:
    """What the router needs about one message, read in one query."""

    message: MessageView
    preferred_instance: str | None
    unknown: UnknownAttempt | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    """An accepted message. `routing` is set when this call recorded it: the message as
    recorded and its contact's sticky instance, so delivery need not read them back;
    `contact_was_new` then says whether the contact had no sticky instance before."""

    id: uuid.UUID
    created: bool
    state: MessageState
    routing: RoutingInput | None = None
    contact_was_new: bool = False


def new_message_view(new: NewMessage, *, claimed_on: str | None = None) -> MessageView:
    """The row `MessageStore.accept` writes for `new`, as a view; with `claimed_on`, the row
    `accept_claiming` writes when it claims the message for that instance."""
    return MessageView(
        id=new.id,
        contact_id=new.contact_id,
        phone=new.phone,
        text=new.text,
        state=MessageState.SENDING if claimed_on else MessageState.QUEUED,
        instance=claimed_on,
        provider_message_id=None,
        attempts=1 if claimed_on else 0,
        requeues=0,
        idempotency_key=new.idempotency_key,
        not_before=None,
        expires_at=new.expires_at,
        created_at=new.created_at,
        sent_at=None,
        last_error=None,
        campaign=new.campaign,
    )


def message_view(row: Message | Row[Any] | Any) -> MessageView:
    """A view of a `messages` row: an ORM object, or a row selected by column name (a named
    tuple from models/message_sql.py, whose state is still a string)."""
    return MessageView(
        id=row.id,
        contact_id=row.contact_id,
        phone=row.phone,
        text=row.text,
        state=MessageState(row.state),
        instance=row.instance,
        provider_message_id=row.provider_message_id,
        attempts=row.attempts,
        requeues=row.requeues,
        idempotency_key=row.idempotency_key,
        not_before=row.not_before,
        expires_at=row.expires_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        campaign=getattr(row, "campaign", None),
    )
