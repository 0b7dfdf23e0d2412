"""Tables of the sending controls: pauses and the not-on-WhatsApp memory.

Only the stores (`models/pause_store.py`, `models/policy_store.py`) and the migrations touch
these classes; everything else receives frozen views.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base

#: Pause scopes: all sending, one instance, or one campaign.
PAUSE_SCOPES = ("all", "instance", "campaign")


class Pause(Base):
    """One pause in force: `scope` `all` (target ''), `instance` or `campaign` (target its
    name). Resuming deletes the row. At most one row per (scope, target)."""

    __tablename__ = "pauses"
    __table_args__ = (
        CheckConstraint("scope IN ('all', 'instance', 'campaign')", name="pause_scope"),
        CheckConstraint("(scope = 'all') = (target = '')", name="pause_target"),
    )

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    target: Mapped[str] = mapped_column(String(100), primary_key=True)
    paused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NotOnWhatsApp(Base):
    """A phone Evolution reported not on WhatsApp, and when: later messages to it fail at
    once, without asking again, until NOT_ON_WHATSAPP_TTL_DAYS have passed."""

    __tablename__ = "not_on_whatsapp"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[str | None] = mapped_column(Text)
