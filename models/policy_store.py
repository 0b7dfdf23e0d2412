"""SQL for the sending policy: parking for the recipient's quiet hours, and the memory of
numbers Evolution reported not on WhatsApp."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.enums import PENDING_STATES, MessageState
from models.tables import Message, NotOnWhatsApp

#: `messages.wait_reason` of a message waiting for the end of its recipient's night.
QUIET_HOURS = "quiet_hours"


@dataclass(frozen=True, slots=True)
class NotOnWhatsAppView:
    phone: str
    found_at: datetime
    detail: str | None


class PolicyStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def park_quiet(self, message_id: uuid.UUID, until: datetime, now: datetime) -> bool:
        """A pending message → `waiting` until `until` (the end of the recipient's quiet
        hours); no attempt and no requeue is counted: it is not a failure to send."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Message)
                .where(Message.id == message_id, Message.state.in_(list(PENDING_STATES)))
                .values(
                    state=MessageState.WAITING,
                    not_before=until,
                    wait_reason=QUIET_HOURS,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    # -- not on WhatsApp ------------------------------------------------------------------
    def remember_not_on_whatsapp(self, phone: str, at: datetime, detail: str | None) -> None:
        """Remember (or refresh) that `phone` is not on WhatsApp, as of `at`."""
        with self._sessions.begin() as session:
            statement = insert(NotOnWhatsApp).values(phone=phone, found_at=at, detail=detail)
            session.execute(
                statement.on_conflict_do_update(
                    index_elements=[NotOnWhatsApp.phone],
                    set_={"found_at": statement.excluded.found_at, "detail": detail},
                )
            )

    def not_on_whatsapp(self, phone: str, since: datetime) -> NotOnWhatsAppView | None:
        """The memory of `phone` when it was found not on WhatsApp at or after `since`."""
        with self._sessions() as session:
            row = session.get(NotOnWhatsApp, phone)
            if row is None or row.found_at < since:
                return None
            return NotOnWhatsAppView(row.phone, row.found_at, row.detail)

    def forget_not_on_whatsapp(self, phone: str) -> bool:
        """Clear the memory of `phone`; True when there was one."""
        with self._sessions.begin() as session:
            result = session.execute(delete(NotOnWhatsApp).where(NotOnWhatsApp.phone == phone))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def all_not_on_whatsapp(self, since: datetime) -> list[NotOnWhatsAppView]:
        with self._sessions() as session:
            rows = session.scalars(
                select(NotOnWhatsApp)
                .where(NotOnWhatsApp.found_at >= since)
                .order_by(NotOnWhatsApp.found_at)
            )
            return [NotOnWhatsAppView(r.phone, r.found_at, r.detail) for r in rows]
