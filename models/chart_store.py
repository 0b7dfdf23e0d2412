"""Read-only aggregates for the console's charts and `/metrics` (the same numbers), and the
queue-depth samples the health check writes.

- receipts per instance over a window: sent, delivered, read (messages sent in the window);
- sends per instance per local hour over a window (one grouped query for the whole pool);
- messages waiting now, by the reason of their latest recorded wait;
- queue depth (queued, waiting, sending) sampled once per health check, kept
  `SAMPLE_RETENTION` and read back over the last hours;
- per campaign: accepted → sent → delivered → read (and cancelled, failed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models.enums import MessageState
from models.tables import Message, QueueSample

#: The states the queue-depth chart follows.
SAMPLED_STATES = (MessageState.QUEUED, MessageState.WAITING, MessageState.SENDING)
#: Samples older than this are deleted when a new one is written.
SAMPLE_RETENTION = timedelta(hours=48)
#: The funnel shows at most this many campaigns, the most recently active first.
MAX_CAMPAIGNS = 20

_WAITING_BY_REASON = text(
    """
    SELECT coalesce(e.reason, 'unknown') AS reason, count(*) AS n
    FROM messages m
    LEFT JOIN LATERAL (
        SELECT reason FROM message_events
        WHERE message_id = m.id AND kind IN ('waiting', 'requeued')
        ORDER BY at DESC, id DESC LIMIT 1
    ) e ON true
    WHERE m.state = 'waiting' OR (m.state = 'queued' AND m.requeues > 0)
    GROUP BY 1
    ORDER BY 2 DESC, 1
    """
)


@dataclass(frozen=True, slots=True)
class Receipts:
    """Messages an instance sent in a window, and how many of them were delivered and read."""

    sent: int
    delivered: int
    read: int
    with_receipt: int  # any receipt at all (server_ack included)


@dataclass(frozen=True, slots=True)
class DepthSample:
    sampled_at: datetime
    counts: dict[str, int]  # state → messages


@dataclass(frozen=True, slots=True)
class Funnel:
    campaign: str
    accepted: int
    sent: int
    delivered: int
    read: int
    failed: int
    cancelled: int


class ChartStore:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def receipts_since(self, names: Sequence[str], since: datetime) -> dict[str, Receipts]:
        """Per instance of `names`: messages with `sent_at >= since`, and of those the
        delivered and the read ones (a read message counts as delivered too). One range
        scan of `ix_messages_instance_sent_at` per name."""
        delivered = func.count().filter(
            (Message.delivered_at.is_not(None)) | (Message.read_at.is_not(None))
        )
        query = (
            select(
                Message.instance,
                func.count(),
                delivered,
                func.count(Message.read_at),
                func.count(Message.receipt),
            )
            .where(Message.instance.in_(list(names)), Message.sent_at >= since)
            .group_by(Message.instance)
        )
        with self._sessions() as session:
            return {
                str(name): Receipts(int(s), int(d), int(r), int(a))
                for name, s, d, r, a in session.execute(query)
            }

    def sends_per_hour(
        self, names: Sequence[str], since: datetime, zone: str
    ) -> dict[str, dict[datetime, int]]:
        """Per instance of `names`: messages sent since `since`, keyed by naive local hour
        start in `zone` (as `ActivityStore.sends_per_hour`); index range scans as above."""
        hour = func.date_trunc("hour", func.timezone(literal(zone), Message.sent_at))
        query = (
            select(Message.instance, hour, func.count())
            .where(Message.instance.in_(list(names)), Message.sent_at >= since)
            .group_by(Message.instance, hour)
        )
        out: dict[str, dict[datetime, int]] = {}
        with self._sessions() as session:
            for name, start, count in session.execute(query):
                out.setdefault(str(name), {})[start] = int(count)
        return out

    def waiting_by_reason(self) -> dict[str, int]:
        """Messages held back now (`waiting`, or `queued` after a requeue), by the reason of
        their latest recorded wait (`unknown` when none was recorded)."""
        with self._sessions() as session:
            return {str(r): int(n) for r, n in session.execute(_WAITING_BY_REASON)}

    def sample_queue(self, now: datetime) -> dict[str, int]:
        """Count messages per sampled state, store the sample at `now` (one row per state,
        zeros included; a second sample at the same instant is ignored), and drop samples
        older than `SAMPLE_RETENTION`. Returns the counts."""
        states = [s.value for s in SAMPLED_STATES]
        # One count per state, each on that state's partial index (models/tables.py).
        per_state = [
            select(func.count()).where(Message.state == state).scalar_subquery()
            for state in SAMPLED_STATES
        ]
        with self._sessions.begin() as session:
            row = session.execute(select(*per_state)).one()
            counts = {state: int(n) for state, n in zip(states, row, strict=True)}
            session.execute(
                insert(QueueSample)
                .values([{"sampled_at": now, "state": s, "count": n} for s, n in counts.items()])
                .on_conflict_do_nothing()
            )
            session.execute(
                delete(QueueSample).where(QueueSample.sampled_at < now - SAMPLE_RETENTION)
            )
        return counts

    def queue_history(self, since: datetime) -> list[DepthSample]:
        """Samples taken since `since`, oldest first."""
        query = (
            select(QueueSample.sampled_at, QueueSample.state, QueueSample.count)
            .where(QueueSample.sampled_at >= since)
            .order_by(QueueSample.sampled_at, QueueSample.state)
        )
        samples: dict[datetime, dict[str, int]] = {}
        with self._sessions() as session:
            for at, state, count in session.execute(query):
                samples.setdefault(at, {})[str(state)] = int(count)
        return [DepthSample(at, counts) for at, counts in samples.items()]

    def funnels(self, since: datetime) -> list[Funnel]:
        """Campaigns with messages created since `since` (at most `MAX_CAMPAIGNS`, the most
        recently active first): accepted, sent, delivered (or read), read, failed, cancelled."""
        query = (
            select(
                Message.campaign,
                func.count(),
                func.count(Message.sent_at),
                func.count().filter(
                    (Message.delivered_at.is_not(None)) | (Message.read_at.is_not(None))
                ),
                func.count(Message.read_at),
                func.count().filter(Message.state == MessageState.FAILED),
                func.count().filter(Message.state == MessageState.CANCELLED),
            )
            .where(Message.campaign.is_not(None), Message.created_at >= since)
            .group_by(Message.campaign)
            .order_by(func.max(Message.created_at).desc(), Message.campaign)
            .limit(MAX_CAMPAIGNS)
        )
        with self._sessions() as session:
            return [
                Funnel(str(c), int(a), int(s), int(d), int(r), int(f), int(x))
                for c, a, s, d, r, f, x in session.execute(query)
            ]
