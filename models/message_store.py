"""Messages: acceptance (idempotent), reads, the claim guard and outcomes.

Every state change is a conditional UPDATE on the current state, so two workers holding
the same task can never both move one message forward (the claim is the send guard): the
writes are models/message_transitions.py, the hot path's statements models/message_sql.py,
and sends whose outcome is unknown have their own store (models/unknown_send_store.py).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models import message_sql
from models.claimant import claimant
from models.enums import PENDING_STATES, TERMINAL_STATES, AttemptOutcome, MessageState
from models.message_transitions import end_attempt, record_event, transition
from models.message_values import (
    Accepted,
    ClaimOutcome,
    IdempotencyConflict,
    NewMessage,
    RejectedMessage,
    RoutingInput,
    UnknownAttempt,
    UnknownMessage,
    message_view,
    new_message_view,
)
from models.statements import Statements
from models.tables import Message, SendAttempt
from models.unknown_send_store import UnknownSendStore
from models.views import MessageView

#: The note on a message sent whose answer could not be read.
PROVIDER_ID_UNKNOWN = "sent; provider id unknown (Evolution's answer could not be read)"


class MessageStore:
    """The messages table and the contact rows that producers create through it."""

    def __init__(self, sessions: sessionmaker[Session], statements: Engine | None = None) -> None:
        """`statements` runs the hot path's single statements (models/message_sql.py, on
        psycopg's cursor: models/statements.py); it must be in autocommit mode. By default,
        the sessions' engine in autocommit mode."""
        self._sessions = sessions
        bind = sessions.kw["bind"]
        engine = statements or bind.execution_options(isolation_level="AUTOCOMMIT")
        self._statements = Statements(engine)
        #: Sends whose outcome is unknown: their own lifecycle, on the same database.
        self.unknown_sends = UnknownSendStore(sessions)

    # -- acceptance -----------------------------------------------------------------
    def accept(self, new: NewMessage) -> Accepted:
        """Record a message once per idempotency key; a key reused with other content raises.

        One statement (message and contact together). A message recorded by this call comes
        back with its `routing` input, so delivery can route it without reading it back."""
        inserted, preferred = self._statements.one_row(message_sql.ACCEPT, _accept_params(new))
        if inserted is not None:
            routing = RoutingInput(new_message_view(new), preferred)
            return Accepted(
                new.id, True, MessageState.QUEUED, routing, contact_was_new=preferred is None
            )
        return self._existing_for(new)

    def accept_claiming(
        self,
        new: NewMessage,
        instance: str,
        *,
        seen: str | None,
        claimed_at: datetime | None = None,
    ) -> Accepted:
        """`accept` and the send guard in one statement, for a message routed before it was
        recorded: `instance` has a reserved slot, `seen` is the contact's sticky instance as
        the router knew it. Comes back `sending` on `instance` when that is the contact's
        sticky instance afterwards (it was `seen` and moved, or already was `instance`);
        `queued` with the actual preference when it is not; or, like `accept`, as the
        existing message its key names."""
        params = _accept_params(new) | {
            "instance": instance,
            "seen": seen,
            "claimed_at": claimed_at or new.created_at,
        }
        inserted, claimed, preferred, had_one = self._statements.one_row(
            message_sql.ACCEPT_CLAIMING, params, repeatable=False
        )
        if inserted is None:
            return self._existing_for(new)
        view = new_message_view(new, claimed_on=instance if claimed else None)
        routing = RoutingInput(view, preferred)
        return Accepted(new.id, True, view.state, routing, contact_was_new=not had_one)

    def _existing_for(self, new: NewMessage) -> Accepted:
        with self._sessions() as session:
            return self._existing(session, new.idempotency_key, new.id, new.content_hash)

    def reject(self, bad: RejectedMessage) -> Accepted:
        """Record invalid input as `failed` with its reason (idempotent on the key too)."""
        with self._sessions.begin() as session:
            return self._insert_once(
                session,
                MessageState.FAILED,
                bad.content_hash,
                id=bad.id,
                phone=bad.raw_phone[:32],
                text=bad.text,
                idempotency_key=bad.idempotency_key,
                expires_at=bad.now,
                last_error=bad.reason,
                campaign=bad.campaign,
                created_at=bad.now,
                updated_at=bad.now,
            )

    def _insert_once(
        self, session: Session, state: MessageState, content_hash: str, **values: Any
    ) -> Accepted:
        """Insert unless the idempotency key exists; then return the existing message."""
        inserted = session.scalar(
            insert(Message)
            .values(state=state, content_hash=content_hash, **values)
            .on_conflict_do_nothing()
            .returning(Message.id)
        )
        if inserted is not None:
            return Accepted(inserted, True, state)
        return self._existing(session, values.get("idempotency_key"), values["id"], content_hash)

    @staticmethod
    def _existing(
        session: Session, key: str | None, message_id: uuid.UUID, content_hash: str
    ) -> Accepted:
        """The message an insert conflicted with: the idempotency key's, or (no key: an
        insert whose first run committed unseen) the one with this very id. Finding this
        very id means the message is this call's own: it counts as created."""
        match = Message.idempotency_key == key if key is not None else Message.id == message_id
        row = session.scalar(select(Message).where(match))
        if row is None:  # pragma: no cover - the conflict that sent us here names this row
            raise UnknownMessage(f"idempotency key {key!r} vanished")
        if row.id == message_id:
            return Accepted(row.id, True, row.state)
        if row.content_hash != content_hash:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for a different message ({row.id})"
            )
        return Accepted(row.id, False, row.state)

    # -- reads --------------------------------------------------------------------------
    def get(self, message_id: uuid.UUID) -> MessageView:
        with self._sessions() as session:
            row = session.get(Message, message_id)
            if row is None:
                raise UnknownMessage(f"no message {message_id}")
            return message_view(row)

    def routing_input(self, message_id: uuid.UUID) -> RoutingInput:
        """The message and its contact's preferred instance, in one indexed query."""
        row = self._statements.row(message_sql.ROUTING_INPUT, {"id": message_id}, named=True)
        if row is None:
            raise UnknownMessage(f"no message {message_id}")
        unknown = None
        if row.unknown_attempt is not None:
            unknown = UnknownAttempt(
                row.unknown_attempt, row.unknown_instance, row.unknown_since, row.unknown_lookups
            )
        return RoutingInput(message_view(row), row.preferred_instance, unknown)

    def count_by_state(self) -> dict[str, int]:
        with self._sessions() as session:
            rows = session.execute(select(Message.state, func.count()).group_by(Message.state))
            return {str(state): int(count) for state, count in rows}

    def total_requeues(self) -> int:
        with self._sessions() as session:
            return int(session.scalar(select(func.coalesce(func.sum(Message.requeues), 0))) or 0)

    # -- the send guard -----------------------------------------------------------------
    def claim(
        self,
        message_id: uuid.UUID,
        instance: str,
        *,
        contact_id: str | None,
        seen_preference: str | None,
        now: datetime,
    ) -> ClaimOutcome:
        """Move a pending message to `sending` on `instance` and make `instance` the contact's
        sticky number, atomically; only if nobody moved either since we looked, and only
        while `instance` is active and not banned (INSTANCE_UNUSABLE otherwise)."""
        params = {"id": message_id, "instance": instance, "now": now, "claimant": claimant()}
        if contact_id is None or seen_preference == instance:
            claimed, usable = self._statements.one_row(message_sql.CLAIM, params, repeatable=False)
            moved = True
        else:
            params |= {"contact_id": contact_id, "seen": seen_preference}
            # A moved preference without its message is not kept: rolled back unless claimed.
            moved, claimed, usable = self._statements.in_transaction(
                message_sql.CLAIM_MOVING_PREFERENCE, params, keep=lambda row: bool(row[1])
            )
        if claimed:
            return ClaimOutcome.CLAIMED
        if not usable:
            return ClaimOutcome.INSTANCE_UNUSABLE
        return ClaimOutcome.NOT_PENDING if moved else ClaimOutcome.PREFERENCE_CHANGED

    # -- outcomes -----------------------------------------------------------------------
    def mark_sent(
        self,
        message_id: uuid.UUID,
        provider_id: str | None,
        now: datetime,
        *,
        instance: str | None = None,
        claimed_at: datetime | None = None,
    ) -> bool:
        """`sending` → `sent`; with `claimed_at` (the claim's token) only while the message is
        still under that claim. With `instance`, the same statement records the delivered send
        on that instance: its breaker closed, `last_message_at` stamped (to the second).
        Without `provider_id` (Evolution's answer could not be read) it is sent all the
        same, noted "sent; provider id unknown"."""
        (sent,) = self._statements.one_row(
            message_sql.MARK_SENT,
            {
                "id": message_id,
                "provider_message_id": provider_id,
                "now": now,
                "instance": instance,
                "note": None if provider_id else PROVIDER_ID_UNKNOWN,
                "claimed_at": claimed_at,
            },
        )
        return bool(sent)

    def mark_failed(
        self,
        message_id: uuid.UUID,
        reason: str,
        now: datetime,
        *,
        claimed_at: datetime | None = None,
    ) -> bool:
        """Terminal failure from any non-terminal state (with `claimed_at`: only while the
        message is under that claim); an attempt in flight was not sent (the failure was
        Evolution's answer before sending)."""
        live = set(MessageState) - TERMINAL_STATES
        with self._sessions.begin() as session:
            moved = transition(
                session,
                message_id,
                live,
                MessageState.FAILED,
                now,
                claimed_at=claimed_at,
                last_error=reason[:2000],
            )
            if moved:
                end_attempt(session, message_id, AttemptOutcome.NOT_SENT, now, reason)
                record_event(session, message_id, "failed", now, reason=reason[:2000])
            return moved

    def mark_expired(self, message_id: uuid.UUID, now: datetime) -> bool:
        reason = "expired: TTL passed before a send slot"
        with self._sessions.begin() as session:
            moved = transition(
                session, message_id, PENDING_STATES, MessageState.EXPIRED, now, last_error=reason
            )
            if moved:
                record_event(session, message_id, "expired", now, reason=reason)
            return moved

    def return_to_queue(
        self,
        message_id: uuid.UUID,
        error: str,
        now: datetime,
        *,
        claimed_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> bool:
        """After a send that provably did not happen: `sending` → `queued` (with
        `claimed_at`: only while under that claim), its attempt `not_sent`, the error kept.
        `refund_attempt`: the refusal was nobody's fault (Evolution not activated), so the
        claim's attempt does not count towards MAX_SEND_ATTEMPTS."""
        refund = {"attempts": Message.attempts - 1} if refund_attempt else {}
        with self._sessions.begin() as session:
            moved = transition(
                session,
                message_id,
                {MessageState.SENDING},
                MessageState.QUEUED,
                now,
                claimed_at=claimed_at,
                last_error=error[:2000],
                **refund,
            )
            if moved:
                end_attempt(session, message_id, AttemptOutcome.NOT_SENT, now, error)
                record_event(session, message_id, "attempt_failed", now, reason=error[:2000])
            return moved

    def spent_since(self, hour_start: datetime, day_start: datetime) -> dict[str, tuple[int, int]]:
        """Per instance, the attempts that spent a slot since `hour_start` and since
        `day_start`: what the limiter's hourly and daily counters must be at least."""
        spent = (
            select(
                SendAttempt.instance,
                func.count().filter(SendAttempt.started_at >= hour_start),
                func.count(),
            )
            .where(
                SendAttempt.started_at >= day_start,
                SendAttempt.outcome != AttemptOutcome.NOT_SENT,
            )
            .group_by(SendAttempt.instance)
        )
        with self._sessions() as session:
            rows = session.execute(spent).all()
        return {str(name): (int(hour), int(day)) for name, hour, day in rows}

    def note_requeue(
        self,
        message_id: uuid.UUID,
        now: datetime,
        *,
        not_before: datetime | None = None,
        reason: str | None = None,
    ) -> bool:
        """Count a capacity wait. With `not_before` the message is parked as `waiting`.
        The wait is kept in the message's timeline (`message_events`) with `reason`."""
        state = MessageState.WAITING if not_before is not None else MessageState.QUEUED
        with self._sessions.begin() as session:
            moved = transition(
                session,
                message_id,
                PENDING_STATES,
                state,
                now,
                requeues=Message.requeues + 1,
                not_before=not_before,
            )
            if moved:
                kind = "waiting" if not_before is not None else "requeued"
                record_event(session, message_id, kind, now, reason=reason, until=not_before)
            return moved


def _accept_params(new: NewMessage) -> dict[str, Any]:
    return {
        "id": new.id,
        "contact_id": new.contact_id,
        "phone": new.phone,
        "text": new.text,
        "content_hash": new.content_hash,
        "idempotency_key": new.idempotency_key,
        "expires_at": new.expires_at,
        "now": new.created_at,
        "claimant": claimant(),
        "campaign": new.campaign,
    }


__all__ = [
    "Accepted",
    "ClaimOutcome",
    "IdempotencyConflict",
    "MessageStore",
    "NewMessage",
    "RejectedMessage",
    "RoutingInput",
    "UnknownAttempt",
    "UnknownMessage",
    "message_view",
]
