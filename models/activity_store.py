"""Read-only SQL for the status API and the CLI: sends per hour, recent messages, a ping.

Kept apart from the stores that routing uses: nothing here writes, and every query is
bounded (a time window on an indexed column, or a LIMIT).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, func, literal, select, text
from sqlalchemy.orm import Session, sessionmaker

from models.message_store import message_view
from models.tables import Message
from models.views import MessageView


class ActivityStore:
    """What happened recently, for people looking at the system."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def ping(self) -> None:
        """`SELECT 1`; raises when PostgreSQL does not answer."""
        with self._sessions() as session:
            session.execute(text("SELECT 1"))

    def sends_per_hour(self, instance: str, since: datetime, zone: str) -> dict[datetime, int]:
        """Messages `sent` on `instance` since `since`, keyed by local hour start in `zone`.

        Keys are naive local datetimes (wall-clock hour starts in `zone`); uses the
        `ix_messages_instance_sent_at` index.
        """
        hour = func.date_trunc("hour", func.timezone(literal(zone), Message.sent_at))
        query = (
            select(hour, func.count())
            .where(Message.instance == instance, Message.sent_at >= since)
            .group_by(hour)
        )
        with self._sessions() as session:
            rows: list[Row[tuple[datetime, int]]] = list(session.execute(query))
            return {start: int(count) for start, count in rows}

    def recent_messages(self, limit: int) -> list[MessageView]:
        """The `limit` most recently created messages, newest first."""
        query = select(Message).order_by(Message.created_at.desc()).limit(limit)
        with self._sessions() as session:
            return [message_view(row) for row in session.scalars(query)]
