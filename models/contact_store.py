"""Contacts as webhooks and operators change them: replies, opt-outs, opt-ins.

Inbound messages and opt-outs name a phone, not a contact id, so they apply to every contact
with that phone; when no contact has it, one is created with the phone as its id (the id a
producer's message without `contact_id` gets), so the reply or the opt-out is not lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.tables import Contact


@dataclass(frozen=True, slots=True)
class ContactView:
    id: str
    phone: str
    preferred_instance: str | None
    preferred_since: datetime | None
    last_reply_at: datetime | None
    opted_out_at: datetime | None
    created_at: datetime

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None


@dataclass(frozen=True, slots=True)
class OptedOut:
    """Every opted-out contact id and phone (the opt-out gate's cache)."""

    ids: frozenset[str]
    phones: frozenset[str]

    def covers(self, contact_id: str | None, phone: str | None) -> bool:
        return (contact_id is not None and contact_id in self.ids) or (
            phone is not None and phone in self.phones
        )


def contact_view(row: Contact) -> ContactView:
    return ContactView(
        id=row.id,
        phone=row.phone,
        preferred_instance=row.preferred_instance,
        preferred_since=row.preferred_since,
        last_reply_at=row.last_reply_at,
        opted_out_at=row.opted_out_at,
        created_at=row.created_at,
    )


class ContactStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record_reply(self, phones: Sequence[str], instance: str, at: datetime) -> int:
        """A contact with one of `phones` wrote to `instance`: stamp the reply and make
        `instance` its preferred number. `phones[0]` names a new contact if none exists.
        Returns the contacts updated."""
        with self._sessions.begin() as session:
            updated = session.execute(
                update(Contact)
                .where(Contact.phone.in_(phones))
                .values(
                    last_reply_at=at,
                    preferred_instance=instance,
                    preferred_since=_since_if_moved(instance, at),
                )
            )
            if int(updated.rowcount or 0):  # type: ignore[attr-defined]
                return int(updated.rowcount)  # type: ignore[attr-defined]
            session.execute(
                insert(Contact)
                .values(
                    id=phones[0],
                    phone=phones[0],
                    preferred_instance=instance,
                    preferred_since=at,
                    last_reply_at=at,
                )
                .on_conflict_do_nothing()
            )
            return 1

    def set_opted_out(self, phones: Sequence[str], at: datetime | None) -> int:
        """Opt every contact with one of `phones` out (`at`) or back in (None); with no such
        contact, an opt-out creates one named by `phones[0]`. Returns the contacts changed."""
        with self._sessions.begin() as session:
            changed = self._set(session, Contact.phone.in_(phones), at)
            if changed or at is None:
                return changed
            session.execute(
                insert(Contact)
                .values(id=phones[0], phone=phones[0], opted_out_at=at)
                .on_conflict_do_update(index_elements=[Contact.id], set_={"opted_out_at": at})
            )
            return 1

    def set_contact_opted_out(self, contact_id: str, at: datetime | None) -> int:
        """Opt one contact (by id) out (`at`) or in (None); returns 0 when it does not exist."""
        with self._sessions.begin() as session:
            return self._set(session, Contact.id == contact_id, at)

    @staticmethod
    def _set(session: Session, where: ColumnElement[bool], at: datetime | None) -> int:
        """An opt-out keeps its first time; an opt-in clears it."""
        value = func.coalesce(Contact.opted_out_at, at) if at is not None else None
        result = session.execute(update(Contact).where(where).values(opted_out_at=value))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def find(self, contact_id: str | None = None, phones: Sequence[str] = ()) -> list[ContactView]:
        """Contacts with id `contact_id` or one of `phones`, by id."""
        conditions = []
        if contact_id is not None:
            conditions.append(Contact.id == contact_id)
        if phones:
            conditions.append(Contact.phone.in_(phones))
        if not conditions:
            return []
        with self._sessions() as session:
            rows = session.scalars(select(Contact).where(or_(*conditions)).order_by(Contact.id))
            return [contact_view(r) for r in rows]

    def opted_out(self) -> OptedOut:
        """Every opted-out contact's id and phone (a handful: the gate caches them)."""
        with self._sessions() as session:
            rows = session.execute(
                select(Contact.id, Contact.phone).where(Contact.opted_out_at.is_not(None))
            ).all()
        return OptedOut(frozenset(r[0] for r in rows), frozenset(r[1] for r in rows))


def _since_if_moved(instance: str, at: datetime) -> ColumnElement[datetime | None]:
    """`preferred_since` keeps its value when the preference does not change."""
    return case((Contact.preferred_instance == instance, Contact.preferred_since), else_=at)
