"""SQL for messages: acceptance (idempotent), the claim guard and outcomes.

Every state change is a conditional UPDATE on the current state, so two workers holding
the same task can never both move one message forward (the claim is the send guard).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, LiteralString

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from models import message_sql
from models.claimant import claimant
from models.enums import PENDING_STATES, TERMINAL_STATES, AttemptOutcome, MessageState
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
from models.tables import Message, MessageEvent, SendAttempt
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

    # -- acceptance -----------------------------------------------------------------
    def accept(self, new: NewMessage) -> Accepted:
        """Record a message once per idempotency key; a key reused with other content raises.

        One statement (message and contact together). A message recorded by this call comes
        back with its `routing` input, so delivery can route it without reading it back."""
        inserted, preferred = self._first_row(message_sql.ACCEPT, _accept_params(new))
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
        inserted, claimed, preferred, had_one = self._first_row(
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
        row = self._run(message_sql.ROUTING_INPUT, {"id": message_id}, named=True)
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
            claimed, usable = self._first_row(message_sql.CLAIM, params, repeatable=False)
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
        (sent,) = self._first_row(
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
            moved = self._transition(
                session,
                message_id,
                live,
                MessageState.FAILED,
                now,
                claimed_at=claimed_at,
                last_error=reason[:2000],
            )
            if moved:
                _end_attempt(session, message_id, AttemptOutcome.NOT_SENT, now, reason)
                _record_event(session, message_id, "failed", now, reason=reason[:2000])
            return moved

    def mark_expired(self, message_id: uuid.UUID, now: datetime) -> bool:
        reason = "expired: TTL passed before a send slot"
        with self._sessions.begin() as session:
            moved = self._transition(
                session, message_id, PENDING_STATES, MessageState.EXPIRED, now, last_error=reason
            )
            if moved:
                _record_event(session, message_id, "expired", now, reason=reason)
            return moved

    def return_to_queue(
        self,
        message_id: uuid.UUID,
        error: str,
        now: datetime,
        *,
        claimed_at: datetime | None = None,
    ) -> bool:
        """After a send that provably did not happen: `sending` → `queued` (with
        `claimed_at`: only while under that claim), its attempt `not_sent`, the error kept."""
        with self._sessions.begin() as session:
            moved = self._transition(
                session,
                message_id,
                {MessageState.SENDING},
                MessageState.QUEUED,
                now,
                claimed_at=claimed_at,
                last_error=error[:2000],
            )
            if moved:
                _end_attempt(session, message_id, AttemptOutcome.NOT_SENT, now, error)
                _record_event(session, message_id, "attempt_failed", now, reason=error[:2000])
            return moved

    # -- sends whose outcome is unknown ---------------------------------------------------
    def mark_unknown(
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
            moved = self._transition(
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
                _end_attempt(session, message_id, AttemptOutcome.UNKNOWN, now, detail)
            return moved

    def settle_found(
        self, message_id: uuid.UUID, attempt: UnknownAttempt, provider_id: str, now: datetime
    ) -> bool:
        """Evolution has the message: the unknown attempt was `sent` (at its start)."""
        with self._sessions.begin() as session:
            moved = self._transition(
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
                _settle(
                    session, attempt.id, AttemptOutcome.SENT, now, provider_message_id=provider_id
                )
            return moved

    def note_absent(
        self, message_id: uuid.UUID, attempt: UnknownAttempt, now: datetime, look_up_at: datetime
    ) -> None:
        """A look-up found nothing: counted; the message waits for the next look-up."""
        with self._sessions.begin() as session:
            session.execute(
                update(SendAttempt)
                .where(SendAttempt.id == attempt.id)
                .values(lookups=SendAttempt.lookups + 1)
            )
            self._transition(
                session,
                message_id,
                PENDING_STATES,
                MessageState.WAITING,
                now,
                not_before=look_up_at,
            )

    def settle_unknown(
        self, attempt: UnknownAttempt, outcome: AttemptOutcome, now: datetime, detail: str
    ) -> None:
        """Close an unknown attempt as `absent` or `unverified`: the message may be sent
        again, on a new slot (this attempt's slot stays spent)."""
        with self._sessions.begin() as session:
            _settle(session, attempt.id, outcome, now, detail=detail)

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
            moved = self._transition(
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
                _record_event(session, message_id, kind, now, reason=reason, until=not_before)
            return moved

    def _run(
        self,
        statement: LiteralString,
        params: Mapping[str, Any],
        *,
        repeatable: bool = True,
        named: bool = False,
    ) -> Any | None:
        """One autocommit statement and its first row (a tuple, or a named tuple).

        When the pooled connection turns out dead (PostgreSQL restarted since it was last
        used), the whole pool is dropped and a `repeatable` statement is run once more on a
        fresh connection: what a ping on every checkout would buy, for one round trip per
        statement less. Repeatable means harmless if the first run did commit and only its
        answer was lost: ACCEPT finds its own row, MARK_SENT and ROUTING_INPUT change
        nothing the second time. The claims (CLAIM, ACCEPT_CLAIMING) are not: a lost answer
        would read as "claimed by another worker" and strand the message in `sending` until
        the sweep; they raise instead, and the task retries (the pool is fresh by then)."""
        run = self._statements.first_named if named else self._statements.first
        for attempt in (1, 2) if repeatable else (2,):
            try:
                return run(statement, params)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _first_row(
        self, statement: LiteralString, params: Mapping[str, Any], *, repeatable: bool = True
    ) -> tuple[Any, ...]:
        """The one row a statement always returns (the CTEs' summary row)."""
        row = self._run(statement, params, repeatable=repeatable)
        if row is None:  # pragma: no cover - these statements select one row
            raise AssertionError("statement returned no row")
        return tuple(row)

    @staticmethod
    def _transition(
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
        token) only while it is still under that claim."""
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


def _end_attempt(
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


def _settle(
    session: Session, attempt_id: int, outcome: AttemptOutcome, now: datetime, **values: Any
) -> None:
    """An `unknown` attempt ends with `outcome` (only while it still is unknown)."""
    session.execute(
        update(SendAttempt)
        .where(SendAttempt.id == attempt_id, SendAttempt.outcome == AttemptOutcome.UNKNOWN)
        .values(outcome=outcome, ended_at=now, **values)
        .execution_options(synchronize_session=False)
    )


def _record_event(
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
