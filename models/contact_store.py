"""Contacts as webhooks and operators change them: replies, opt-outs, opt-ins.

Inbound messages and opt-outs name a phone, not a contact id, so they apply to every contact
with that phone. A reply from a phone no contact has creates one, with the phone as its id
(the id a producer's message without `contact_id` gets). An opted-out phone is recorded in
`opt_outs`, apart from contacts, so it holds whatever contact id a later message carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.tables import Contact, OptOut


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
        """Opt `phones` out (`at`) or back in (None), with every contact that has one of them.
        The phones are recorded apart, so a later message to any of them is refused even for
        a contact id never seen. Returns the contacts changed."""
        with self._sessions.begin() as session:
            if at is None:
                session.execute(delete(OptOut).where(OptOut.phone.in_(phones)))
            else:
                rows = [{"phone": p, "opted_out_at": at} for p in phones]
                session.execute(insert(OptOut).values(rows).on_conflict_do_nothing())
            return self._set(session, Contact.phone.in_(phones), at)

    def set_contact_opted_out(self, contact_id: str, at: datetime | None) -> int:
        """Opt one contact (by id) out (`at`) or in (None: its phone is opted in too); returns
        0 when it does not exist."""
        with self._sessions.begin() as session:
            changed = self._set(session, Contact.id == contact_id, at)
            if changed and at is None:
                phone = select(Contact.phone).where(Contact.id == contact_id).scalar_subquery()
                session.execute(delete(OptOut).where(OptOut.phone == phone))
            return changed

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
        """Every opted-out contact id and phone (a handful: the gate caches them)."""
        with self._sessions() as session:
            ids = session.scalars(select(Contact.id).where(Contact.opted_out_at.is_not(None)))
            phones = session.scalars(select(OptOut.phone))
            return OptedOut(frozenset(ids), frozenset(phones))


def _since_if_moved(instance: str, at: datetime) -> ColumnElement[datetime | None]:
    """`preferred_since` keeps its value when the preference does not change."""
    return case((Contact.preferred_instance == instance, Contact.preferred_since), else_=at)
