"""The writes every message state change is made of, inside the caller's transaction.

Each change is conditional on the current state (and, with a claim's token, on that claim),
so two workers holding the same task can never both move one message forward.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.enums import AttemptOutcome, MessageState
from models.tables import Message, MessageEvent, SendAttempt


def transition(
    session: Session,
    message_id: uuid.UUID,
    sources: Collection[MessageState],
    target: MessageState,
    now: datetime,
    *,
    claimed_at: datetime | None = None,
    **values: Any,
) -> bool:
    """Move the message from one of `sources` to `target`; with `claimed_at` (a claim's
    token) only while it is still under that claim. True when it moved."""
    where = [Message.id == message_id, Message.state.in_(list(sources))]
    if claimed_at is not None:
        where.append(Message.claimed_at == claimed_at)
    result = session.execute(
        update(Message)
        .where(*where)
        .values(state=target, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def end_attempt(
    session: Session,
    message_id: uuid.UUID,
    outcome: AttemptOutcome,
    now: datetime,
    detail: str,
) -> None:
    """The message's attempt in flight (if any) ends with `outcome`."""
    session.execute(
        update(SendAttempt)
        .where(
            SendAttempt.message_id == message_id,
            SendAttempt.outcome == AttemptOutcome.SENDING,
        )
        .values(outcome=outcome, ended_at=now, detail=detail[:2000])
        .execution_options(synchronize_session=False)
    )


def settle_attempt(
    session: Session, attempt_id: int, outcome: AttemptOutcome, now: datetime, **values: Any
) -> None:
    """An `unknown` attempt ends with `outcome` (only while it still is unknown)."""
    session.execute(
        update(SendAttempt)
        .where(SendAttempt.id == attempt_id, SendAttempt.outcome == AttemptOutcome.UNKNOWN)
        .values(outcome=outcome, ended_at=now, **values)
        .execution_options(synchronize_session=False)
    )


def record_event(
    session: Session,
    message_id: uuid.UUID,
    kind: str,
    at: datetime,
    *,
    reason: str | None = None,
    until: datetime | None = None,
) -> None:
    """Append one timeline event, in the transaction of the change it records; the instance
    is the one the message row names at that point."""
    instance = select(Message.instance).where(Message.id == message_id).scalar_subquery()
    session.execute(
        insert(MessageEvent).values(
            message_id=message_id, at=at, kind=kind, instance=instance, reason=reason, until=until
        )
    )
