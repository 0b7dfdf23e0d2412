"""SQL for pauses: the rows in force, and waking the messages a resume releases."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.enums import MessageState
from models.tables import Message, Pause

#: `messages.wait_reason` of a message parked because sending was paused.
PAUSED = "paused"

#: Park one pending message while a pause that holds it exists (all sending, or its
#: campaign), share-locking that pause row. Params: id, campaign, until, now.
PARK = text(
    """
    UPDATE messages
       SET state = 'waiting', not_before = :until, wait_reason = 'paused', updated_at = :now
     WHERE id = :id AND state IN ('queued', 'waiting')
       AND EXISTS (SELECT 1 FROM pauses
                    WHERE scope = 'all' OR (scope = 'campaign' AND target = :campaign)
                    FOR SHARE)
    """
)


@dataclass(frozen=True, slots=True)
class PauseRow:
    scope: str
    target: str
    paused_at: datetime


class PauseStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def all(self) -> list[PauseRow]:
        with self._sessions() as session:
            rows = session.execute(select(Pause.scope, Pause.target, Pause.paused_at))
            return [PauseRow(r.scope, r.target, r.paused_at) for r in rows]

    def pause(self, scope: str, target: str, now: datetime) -> PauseRow:
        """Record a pause; pausing what is already paused keeps its first `paused_at`."""
        with self._sessions.begin() as session:
            session.execute(
                insert(Pause)
                .values(scope=scope, target=target, paused_at=now)
                .on_conflict_do_nothing()
            )
            since = session.scalar(
                select(Pause.paused_at).where(Pause.scope == scope, Pause.target == target)
            )
        return PauseRow(scope, target, since or now)

    def resume(self, scope: str, target: str, now: datetime) -> tuple[bool, int]:
        """Delete the pause and make the messages it held due now (the sweep wakes them).

        Resuming all sending wakes every paused message; resuming a campaign wakes its own;
        resuming an instance wakes none (its messages never waited: they fell back). A woken
        message still held by another pause is parked again when delivery tries it.
        Returns (whether that pause existed, messages made due)."""
        with self._sessions.begin() as session:
            deleted = session.execute(
                delete(Pause).where(Pause.scope == scope, Pause.target == target)
            ).rowcount  # type: ignore[attr-defined]
            if scope == "instance":
                return bool(deleted), 0
            held = [Message.state == MessageState.WAITING, Message.wait_reason == PAUSED]
            if scope == "campaign":
                held.append(Message.campaign == target)
            woken = session.execute(
                update(Message)
                .where(*held)
                .values(not_before=now, wait_reason=None, updated_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        return bool(deleted), int(woken)

    def park(
        self, message_id: uuid.UUID, campaign: str | None, until: datetime, now: datetime
    ) -> bool:
        """A pending message held by a pause: `waiting` until `until` (its expiry, so it
        still expires if the pause outlasts it), marked so a resume wakes it. No attempt
        and no requeue is counted.

        Only while a pause holding it is still in PostgreSQL: the statement share-locks that
        pause row, so a concurrent resume either deletes it first (then nothing is parked,
        and the caller delivers) or waits for this statement and then wakes the message.
        A worker acting on a stale view of the pauses can therefore never strand a message."""
        with self._sessions.begin() as session:
            result = session.execute(PARK, {"id": message_id, "campaign": campaign,
                                             "until": until, "now": now})  # fmt: skip
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def paused_waiting(self) -> int:
        """Messages parked by a pause right now."""
        with self._sessions() as session:
            return int(
                session.scalar(
                    select(func.count()).where(
                        Message.state == MessageState.WAITING, Message.wait_reason == PAUSED
                    )
                )
                or 0
            )
