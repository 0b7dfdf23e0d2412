"""The lifecycle of a send whose outcome is unknown, on its message and its attempt.

`mark`: the send got no trustworthy answer (its slot stays spent) and the message waits for
a look-up. Then `found` (Evolution has it: `sent`), `absent` (a look-up found nothing: the
message waits for the next one), or `settle` (closed `absent` or `unverified`: the message
may be sent again, on a new slot).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from models.enums import PENDING_STATES, AttemptOutcome, MessageState
from models.message_transitions import end_attempt, settle_attempt, transition
from models.message_values import UnknownAttempt
from models.tables import SendAttempt


class UnknownSendStore:
    """Unknown send outcomes in the messages and send_attempts tables."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def mark(
        self,
        message_id: uuid.UUID,
        detail: str,
        now: datetime,
        *,
        look_up_at: datetime,
        claimed_at: datetime | None = None,
    ) -> bool:
        """A send with no trustworthy answer: `sending` → `waiting` until `look_up_at` (with
        `claimed_at`: only while under that claim), its attempt `unknown` (its slot stays
        spent). Nothing is sent again before Evolution has been asked about it."""
        with self._sessions.begin() as session:
            moved = transition(
                session,
                message_id,
                {MessageState.SENDING},
                MessageState.WAITING,
                now,
                claimed_at=claimed_at,
                not_before=look_up_at,
                last_error=f"outcome unknown: {detail}"[:2000],
            )
            if moved:
                end_attempt(session, message_id, AttemptOutcome.UNKNOWN, now, detail)
            return moved

    def found(
        self, message_id: uuid.UUID, attempt: UnknownAttempt, provider_id: str, now: datetime
    ) -> bool:
        """Evolution has the message: the unknown attempt was `sent` (at its start)."""
        with self._sessions.begin() as session:
            moved = transition(
                session,
                message_id,
                PENDING_STATES,
                MessageState.SENT,
                now,
                instance=attempt.instance,
                provider_message_id=provider_id,
                sent_at=attempt.started_at,
                not_before=None,
                last_error=None,
            )
            if moved:
                settle_attempt(
                    session, attempt.id, AttemptOutcome.SENT, now, provider_message_id=provider_id
                )
            return moved

    def absent(
        self, message_id: uuid.UUID, attempt: UnknownAttempt, now: datetime, look_up_at: datetime
    ) -> None:
        """A look-up found nothing: counted; the message waits for the next look-up."""
        with self._sessions.begin() as session:
            session.execute(
                update(SendAttempt)
                .where(SendAttempt.id == attempt.id)
                .values(lookups=SendAttempt.lookups + 1)
            )
            transition(
                session,
                message_id,
                PENDING_STATES,
                MessageState.WAITING,
                now,
                not_before=look_up_at,
            )

    def settle(
        self, attempt: UnknownAttempt, outcome: AttemptOutcome, now: datetime, detail: str
    ) -> None:
        """Close an unknown attempt as `absent` or `unverified`: the message may be sent
        again, on a new slot (this attempt's slot stays spent)."""
        with self._sessions.begin() as session:
            settle_attempt(session, attempt.id, outcome, now, detail=detail)
