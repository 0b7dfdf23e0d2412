"""Delivery receipts (Evolution's `messages.update`) on sent messages, and what they add up to.

A receipt only moves forward: `server_ack` → `delivered` → `read` → `played`. `error` is
taken only before delivery (no receipt yet, or `server_ack`) and ends the sequence. A read
or played receipt that skipped `delivered` stamps `delivered_at` too (it was delivered).
Every update is one statement with the rule in its WHERE clause, so repeated, late or
out-of-order receipts change nothing wrongly, whichever API process applies them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, Engine, case, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from models.enums import MessageState, Receipt
from models.tables import Message

#: Order of receipts; `error` sits between `server_ack` and `delivered` for new receipts,
#: and above everything once recorded (`RECORDED_ERROR_RANK`), so nothing replaces it.
RANK = {
    Receipt.SERVER_ACK: 0,
    Receipt.ERROR: 1,
    Receipt.DELIVERED: 2,
    Receipt.READ: 3,
    Receipt.PLAYED: 4,
}
RECORDED_ERROR_RANK = 100
DELIVERED_RECEIPTS = (Receipt.DELIVERED, Receipt.READ, Receipt.PLAYED)


class ReceiptOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the message already has this receipt or a later one
    UNKNOWN = "unknown"  # no message has that provider id


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """One instance's sends in a window: how many, how many delivered (or later), and how
    many carry any receipt at all."""

    sent: int
    delivered: int
    with_receipt: int

    @property
    def delivered_pct(self) -> float | None:
        """Percent delivered; None before any receipt."""
        if self.with_receipt == 0 or self.sent == 0:
            return None
        return round(100.0 * self.delivered / self.sent, 1)


def _recorded_rank() -> ColumnElement[int]:
    whens = [
        (Message.receipt == r, RECORDED_ERROR_RANK if r is Receipt.ERROR else n)
        for r, n in RANK.items()
    ]
    return case(*whens, else_=-1)


class ReceiptStore:
    """`statements`, when given, is an autocommit engine (`models.db.make_statement_engine`):
    a receipt is then one round trip (the UPDATE commits itself), not five (pre-ping, BEGIN,
    UPDATE, COMMIT); bench/webhooks.py measured the difference."""

    def __init__(self, sessions: sessionmaker[Session], statements: Engine | None = None) -> None:
        self._sessions = sessions
        self._statements = statements

    def record(self, provider_message_id: str, receipt: Receipt, at: datetime) -> ReceiptOutcome:
        """Apply `receipt` to the message Evolution calls `provider_message_id`."""
        rank = RANK[receipt]
        values: dict[str, object] = {"receipt": receipt}
        if rank >= RANK[Receipt.DELIVERED]:
            values["delivered_at"] = func.coalesce(Message.delivered_at, at)
        if rank >= RANK[Receipt.READ]:
            values["read_at"] = func.coalesce(Message.read_at, at)
        statement = (
            update(Message)
            .where(Message.provider_message_id == provider_message_id)
            .where(_recorded_rank() < rank)
            .values(**values)
        )
        known = select(exists().where(Message.provider_message_id == provider_message_id))
        with self._connection() as conn:
            if int(conn.execute(statement).rowcount or 0):
                return ReceiptOutcome.APPLIED
            return ReceiptOutcome.STALE if conn.scalar(known) else ReceiptOutcome.UNKNOWN

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """An autocommit connection (one round trip per statement), or a transaction."""
        if self._statements is not None:
            with self._statements.connect() as conn:
                yield conn
        else:
            with self._sessions.begin() as session:
                yield session.connection()

    def delivery_counts(
        self, since: datetime, until: datetime | None = None
    ) -> dict[str, DeliveryCounts]:
        """Per instance, messages sent in [since, until) (until: now when None)."""
        delivered = Message.receipt.in_(DELIVERED_RECEIPTS)
        query = (
            select(
                Message.instance,
                func.count(),
                func.count().filter(delivered),
                func.count(Message.receipt),
            )
            .where(Message.state == MessageState.SENT, Message.sent_at >= since)
            .group_by(Message.instance)
        )
        if until is not None:
            query = query.where(Message.sent_at < until)
        with self._sessions() as session:
            return {
                str(name): DeliveryCounts(int(sent), int(done), int(any_))
                for name, sent, done, any_ in session.execute(query)
                if name is not None
            }
