"""SQL for messages: acceptance (idempotent), the claim guard and outcomes.

Every state change is a conditional UPDATE on the current state, so two workers holding
the same task can never both move one message forward (the claim is the send guard).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.enums import PENDING_STATES, TERMINAL_STATES, MessageState
from models.message_values import (
    Accepted,
    ClaimOutcome,
    IdempotencyConflict,
    NewMessage,
    RejectedMessage,
    RoutingInput,
    UnknownMessage,
    message_view,
)
from models.tables import Contact, Instance, Message
from models.views import MessageView


class MessageStore:
    """The messages table and the contact rows that producers create through it."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    # -- acceptance -----------------------------------------------------------------
    def accept(self, new: NewMessage) -> Accepted:
        """Record a message once per idempotency key; a key reused with other content raises."""
        with self._sessions.begin() as session:
            self._upsert_contact(session, new.contact_id, new.phone)
            return self._insert_once(
                session,
                MessageState.QUEUED,
                new.content_hash,
                id=new.id,
                contact_id=new.contact_id,
                phone=new.phone,
                text=new.text,
                idempotency_key=new.idempotency_key,
                expires_at=new.expires_at,
                created_at=new.created_at,
                updated_at=new.created_at,
            )

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
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(Message.id)
        )
        if inserted is not None:
            return Accepted(inserted, True, state)
        return self._existing(session, values.get("idempotency_key"), content_hash)

    @staticmethod
    def _upsert_contact(session: Session, contact_id: str, phone: str) -> None:
        stmt = insert(Contact).values(id=contact_id, phone=phone)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={"phone": stmt.excluded.phone},
                where=Contact.phone != stmt.excluded.phone,
            )
        )

    @staticmethod
    def _existing(session: Session, key: str | None, content_hash: str) -> Accepted:
        row = session.scalar(select(Message).where(Message.idempotency_key == key))
        if row is None:  # pragma: no cover - the conflict that sent us here names this key
            raise UnknownMessage(f"idempotency key {key!r} vanished")
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
        with self._sessions() as session:
            found = session.execute(
                select(Message, Contact.preferred_instance)
                .outerjoin(Contact, Contact.id == Message.contact_id)
                .where(Message.id == message_id)
            ).first()
            if found is None:
                raise UnknownMessage(f"no message {message_id}")
            return RoutingInput(message_view(found[0]), found[1])

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
        sticky number, in one transaction; only if nobody moved either since we looked."""
        with self._sessions.begin() as session:
            if contact_id is not None and not self._move_preference(
                session, contact_id, seen_preference, instance, now
            ):
                return ClaimOutcome.PREFERENCE_CHANGED
            claimed = self._transition(
                session,
                message_id,
                PENDING_STATES,
                MessageState.SENDING,
                now,
                instance=instance,
                attempts=Message.attempts + 1,
                claimed_at=now,
                not_before=None,
            )
            if not claimed:
                session.rollback()
                return ClaimOutcome.NOT_PENDING
            return ClaimOutcome.CLAIMED

    @staticmethod
    def _move_preference(
        session: Session, contact_id: str, seen: str | None, instance: str, now: datetime
    ) -> bool:
        if seen == instance:
            return True
        current = Contact.preferred_instance
        guard = current.is_(None) if seen is None else current == seen
        result = session.execute(
            update(Contact)
            .where(Contact.id == contact_id, guard)
            .values(preferred_instance=instance, preferred_since=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- outcomes -----------------------------------------------------------------------
    def mark_sent(
        self,
        message_id: uuid.UUID,
        provider_id: str,
        now: datetime,
        *,
        instance: str | None = None,
    ) -> bool:
        """`sending` → `sent`. With `instance`, the same transaction records the delivered
        send on that instance: `last_message_at` stamped, its breaker closed."""
        with self._sessions.begin() as session:
            moved = self._transition(
                session,
                message_id,
                {MessageState.SENDING},
                MessageState.SENT,
                now,
                provider_message_id=provider_id,
                sent_at=now,
                last_error=None,
            )
            if moved and instance is not None:
                session.execute(
                    update(Instance)
                    .where(Instance.name == instance)
                    .values(last_message_at=now, consecutive_failures=0, circuit_opened_at=None)
                    .execution_options(synchronize_session=False)
                )
            return moved

    def mark_failed(self, message_id: uuid.UUID, reason: str, now: datetime) -> bool:
        """Terminal failure from any non-terminal state."""
        live = set(MessageState) - TERMINAL_STATES
        with self._sessions.begin() as session:
            return self._transition(
                session, message_id, live, MessageState.FAILED, now, last_error=reason[:2000]
            )

    def mark_expired(self, message_id: uuid.UUID, now: datetime) -> bool:
        with self._sessions.begin() as session:
            return self._transition(
                session,
                message_id,
                PENDING_STATES,
                MessageState.EXPIRED,
                now,
                last_error="expired: TTL passed before a send slot",
            )

    def return_to_queue(self, message_id: uuid.UUID, error: str, now: datetime) -> bool:
        """After a transient send failure: `sending` → `queued`, error kept for the record."""
        with self._sessions.begin() as session:
            return self._transition(
                session,
                message_id,
                {MessageState.SENDING},
                MessageState.QUEUED,
                now,
                last_error=error[:2000],
            )

    def note_requeue(
        self, message_id: uuid.UUID, now: datetime, *, not_before: datetime | None = None
    ) -> bool:
        """Count a capacity wait. With `not_before` the message is parked as `waiting`."""
        state = MessageState.WAITING if not_before is not None else MessageState.QUEUED
        with self._sessions.begin() as session:
            return self._transition(
                session,
                message_id,
                PENDING_STATES,
                state,
                now,
                requeues=Message.requeues + 1,
                not_before=not_before,
            )

    @staticmethod
    def _transition(
        session: Session,
        message_id: uuid.UUID,
        sources: Collection[MessageState],
        target: MessageState,
        now: datetime,
        **values: Any,
    ) -> bool:
        result = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.state.in_(list(sources)))
            .values(state=target, updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


__all__ = [
    "Accepted",
    "ClaimOutcome",
    "IdempotencyConflict",
    "MessageStore",
    "NewMessage",
    "RejectedMessage",
    "RoutingInput",
    "UnknownMessage",
    "message_view",
]
