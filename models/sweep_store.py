"""SQL for the beat sweep: parked messages that came due, lost tasks, dead workers' claims.

Every query takes a bounded batch and locks with SKIP LOCKED, so overlapping sweeps (or a
sweep racing a worker) never move one message twice. Each reads one state through that
state's partial index (models/tables.py); the state is written into the SQL rather than
bound, so PostgreSQL can prove the index applies even to a generic plan of a prepared
statement (psycopg prepares a statement from its fifth run on a connection).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal_column, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.enums import AttemptOutcome, MessageState
from models.tables import Message, SendAttempt


def in_state(state: MessageState) -> ColumnElement[bool]:
    """`messages.state = '<state>'` with the value in the SQL text, not a parameter."""
    return Message.state == literal_column(f"'{MessageState(state).value}'")


class SweepStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def wake_due(self, now: datetime, limit: int) -> list[uuid.UUID]:
        """Parked messages whose `not_before` has come move `waiting` → `queued`; their ids
        are returned, oldest first, for the caller to enqueue."""
        due = (
            select(Message.id)
            .where(in_state(MessageState.WAITING), Message.not_before <= now)
            .order_by(Message.not_before)
        )
        return self._requeue_batch(due, limit, updated_at=now)

    def idle_queued(self, older_than: datetime, limit: int) -> list[uuid.UUID]:
        """`queued` messages untouched since `older_than`: their task may have vanished."""
        return self._ids(
            select(Message.id)
            .where(in_state(MessageState.QUEUED), Message.updated_at < older_than)
            .order_by(Message.updated_at)
            .limit(limit)
        )

    def release_stuck_sending(
        self,
        older_than: datetime,
        now: datetime,
        limit: int,
        *,
        claimed_by: Sequence[str] | None = None,
    ) -> list[uuid.UUID]:
        """`sending` claims older than `older_than` (their worker died) are released; with
        `claimed_by`, only those claimed by these processes (dead: worker/heartbeat.py)."""
        stuck = select(Message.id).where(
            in_state(MessageState.SENDING), Message.claimed_at < older_than
        )
        if claimed_by is not None:
            stuck = stuck.where(Message.claimed_by.in_(list(claimed_by)))
        return self.release_claims(stuck, now, limit)

    def release_claims(self, ids_query: Any, now: datetime, limit: int) -> list[uuid.UUID]:
        """Claims whose worker stopped before recording the send's outcome: nobody knows
        whether the send went out, so each message waits `waiting` (due now) with its
        attempt `unknown`; its next delivery asks Evolution before sending anything again,
        and the attempt's slot stays spent. Returns the ids, for the caller to enqueue."""
        with self._sessions.begin() as session:
            locked = ids_query.limit(limit).with_for_update(skip_locked=True)
            ids = list(session.scalars(locked))
            if not ids:
                return ids
            detail = "the worker holding the send stopped before recording its outcome"
            session.execute(
                update(SendAttempt)
                .where(
                    SendAttempt.message_id.in_(ids),
                    SendAttempt.outcome == AttemptOutcome.SENDING,
                )
                .values(outcome=AttemptOutcome.UNKNOWN, ended_at=now, detail=detail)
                .execution_options(synchronize_session=False)
            )
            session.execute(
                update(Message)
                .where(Message.id.in_(ids))
                .values(
                    state=MessageState.WAITING,
                    not_before=now,
                    updated_at=now,
                    last_error=f"outcome unknown: {detail}",
                )
                .execution_options(synchronize_session=False)
            )
            return ids

    def _requeue_batch(self, ids_query: Any, limit: int, **values: Any) -> list[uuid.UUID]:
        """Lock up to `limit` rows of `ids_query` (skipping locked ones), set them `queued`
        with `values`, and return their ids."""
        with self._sessions.begin() as session:
            locked = ids_query.limit(limit).with_for_update(skip_locked=True)
            ids = list(session.scalars(locked))
            if ids:
                session.execute(
                    update(Message)
                    .where(Message.id.in_(ids))
                    .values(state=MessageState.QUEUED, **values)
                    .execution_options(synchronize_session=False)
                )
            return ids

    def touch(self, message_ids: Sequence[uuid.UUID], now: datetime) -> None:
        """Mark re-driven messages so the next sweep does not pick them again at once."""
        with self._sessions.begin() as session:
            session.execute(
                update(Message).where(Message.id.in_(list(message_ids))).values(updated_at=now)
            )

    def _ids(self, query: Any) -> list[uuid.UUID]:
        with self._sessions() as session:
            return list(session.scalars(query))
