"""SQL for campaigns: cancel what has not been sent, and count each campaign's messages.

Both read `messages` through the partial index on (campaign, state).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from models.enums import PENDING_STATES, MessageState
from models.tables import Message

CANCELLED_REASON = "cancelled by an operator (zapdispatch campaigns cancel)"


@dataclass(frozen=True, slots=True)
class CampaignSummary:
    """One campaign: messages per state and per receipt (only those known), and when its
    first and last messages were accepted."""

    name: str
    by_state: dict[str, int] = field(default_factory=dict)
    receipts: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_state.values())


class CampaignStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def cancel(self, name: str, now: datetime) -> int:
        """`queued`/`waiting` messages of campaign `name` → `cancelled` (terminal), in one
        statement; returns how many. A message already claimed (`sending`) is not cancelled:
        its send is under way. A countdown or a parked wake-up of a cancelled message later
        finds it terminal and sends nothing."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Message)
                .where(Message.campaign == name, Message.state.in_(list(PENDING_STATES)))
                .values(
                    state=MessageState.CANCELLED,
                    last_error=CANCELLED_REASON,
                    not_before=None,
                    wait_reason=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def summaries(self, name: str | None = None) -> list[CampaignSummary]:
        """Every campaign (or only `name`), by name."""
        only = [Message.campaign == name] if name is not None else [Message.campaign.is_not(None)]
        with self._sessions() as session:
            states = session.execute(
                select(
                    Message.campaign,
                    Message.state,
                    func.count(),
                    func.min(Message.created_at),
                    func.max(Message.created_at),
                )
                .where(*only)
                .group_by(Message.campaign, Message.state)
            ).all()
            receipts = session.execute(
                select(Message.campaign, Message.receipt, func.count())
                .where(*only, Message.receipt.is_not(None))
                .group_by(Message.campaign, Message.receipt)
            ).all()
        found: dict[str, CampaignSummary] = {}
        for campaign, state, count, first, last in states:
            summary = found.setdefault(campaign, CampaignSummary(campaign))
            summary.by_state[str(state)] = int(count)
            found[campaign] = CampaignSummary(
                campaign,
                summary.by_state,
                summary.receipts,
                min(filter(None, (summary.first_at, first))),
                max(filter(None, (summary.last_at, last))),
            )
        for campaign, receipt, count in receipts:
            found[campaign].receipts[str(receipt)] = int(count)
        return [found[k] for k in sorted(found)]
