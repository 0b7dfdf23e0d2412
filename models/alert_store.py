"""SQL for alerts and their notification outbox. Hands out frozen views only."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import Executable

from models.enums import AlertKind, AlertSeverity, Channel, NotificationEvent
from models.tables import Alert, AlertNotification
from models.views import AlertText, AlertView, PendingNotification

#: Error text kept per failed notification (characters).
MAX_ERROR_CHARS = 500


def alert_view(row: Alert, pending: int = 0) -> AlertView:
    return AlertView(
        id=row.id,
        kind=AlertKind(row.kind),
        subject=row.subject,
        severity=AlertSeverity(row.severity),
        title=row.title,
        message=row.message,
        opened_at=row.opened_at,
        last_notified_at=row.last_notified_at,
        reminders=row.reminders,
        resolved_at=row.resolved_at,
        pending=pending,
    )


class AlertStore:
    """The alerts table and its outbox. Each method is one short transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def open_alerts(self) -> list[AlertView]:
        """Alerts not yet resolved, with their pending-notification counts."""
        pending = (
            select(func.count())
            .where(AlertNotification.alert_id == Alert.id, AlertNotification.sent_at.is_(None))
            .scalar_subquery()
        )
        query = select(Alert, pending).where(Alert.resolved_at.is_(None)).order_by(Alert.id)
        with self._sessions() as session:
            return [alert_view(row, int(count)) for row, count in session.execute(query)]

    def recent(self, limit: int = 100) -> list[AlertView]:
        """Every alert, newest first (dashboards, tests)."""
        with self._sessions() as session:
            rows = session.scalars(select(Alert).order_by(Alert.id.desc()).limit(limit))
            return [alert_view(row) for row in rows]

    def open(
        self,
        kind: AlertKind,
        subject: str,
        severity: AlertSeverity,
        text: AlertText,
        *,
        now: datetime,
        channels: Iterable[Channel],
    ) -> AlertView | None:
        """Open an alert and queue its notifications; None if one is already open."""
        channels = tuple(channels)
        values = {
            "kind": kind.value,
            "subject": subject,
            "severity": severity.value,
            "title": text.title,
            "message": text.body,
            "opened_at": now,
            "last_notified_at": now,
            "reminders": 0,
        }
        statement = (
            insert(Alert)
            .values(values)
            .on_conflict_do_nothing(
                index_elements=["kind", "subject"], index_where=Alert.resolved_at.is_(None)
            )
            .returning(Alert)
        )
        with self._sessions.begin() as session:
            row = session.scalars(statement).one_or_none()
            if row is None:
                return None
            _queue(session, row.id, NotificationEvent.OPENED, text, now=now, channels=channels)
            return alert_view(row, pending=len(channels))

    def remind(
        self, alert_id: int, text: AlertText, *, now: datetime, channels: Iterable[Channel]
    ) -> bool:
        """Queue a reminder for an open alert; False if it was resolved meanwhile."""
        statement = (
            update(Alert)
            .where(Alert.id == alert_id, Alert.resolved_at.is_(None))
            .values(last_notified_at=now, reminders=Alert.reminders + 1, message=text.body)
            .returning(Alert.id)
        )
        return self._transition(
            statement, alert_id, NotificationEvent.REMINDER, text, now=now, channels=channels
        )

    def resolve(
        self, alert_id: int, text: AlertText, *, now: datetime, channels: Iterable[Channel]
    ) -> bool:
        """Close an open alert and queue its "resolved" notifications; False if already closed."""
        statement = (
            update(Alert)
            .where(Alert.id == alert_id, Alert.resolved_at.is_(None))
            .values(resolved_at=now)
            .returning(Alert.id)
        )
        return self._transition(
            statement, alert_id, NotificationEvent.RESOLVED, text, now=now, channels=channels
        )

    def pending(self, limit: int = 200) -> list[PendingNotification]:
        """Notifications not yet accepted by their channel, oldest first."""
        query = (
            select(AlertNotification, Alert)
            .join(Alert, Alert.id == AlertNotification.alert_id)
            .where(AlertNotification.sent_at.is_(None))
            .order_by(AlertNotification.created_at, AlertNotification.id)
            .limit(limit)
        )
        with self._sessions() as session:
            return [_pending_view(n, a) for n, a in session.execute(query).tuples()]

    def mark_sent(self, notification_id: int, now: datetime) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(AlertNotification)
                .where(AlertNotification.id == notification_id)
                .values(sent_at=now, attempts=AlertNotification.attempts + 1)
            )

    def mark_failed(self, notification_id: int, error: str) -> None:
        """Count a failed delivery; the notification stays pending."""
        with self._sessions.begin() as session:
            session.execute(
                update(AlertNotification)
                .where(AlertNotification.id == notification_id)
                .values(attempts=AlertNotification.attempts + 1, last_error=error[:MAX_ERROR_CHARS])
            )

    def _transition(
        self,
        statement: Executable,
        alert_id: int,
        event: NotificationEvent,
        text: AlertText,
        *,
        now: datetime,
        channels: Iterable[Channel],
    ) -> bool:
        with self._sessions.begin() as session:
            if session.execute(statement).scalar_one_or_none() is None:
                return False
            _queue(session, alert_id, event, text, now=now, channels=channels)
            return True


def _queue(
    session: Session,
    alert_id: int,
    event: NotificationEvent,
    text: AlertText,
    *,
    now: datetime,
    channels: Iterable[Channel],
) -> None:
    for channel in channels:
        session.add(
            AlertNotification(
                alert_id=alert_id,
                channel=channel.value,
                event=event.value,
                title=text.title,
                body=text.body,
                created_at=now,
                attempts=0,
            )
        )


def _pending_view(row: AlertNotification, alert: Alert) -> PendingNotification:
    return PendingNotification(
        id=row.id,
        alert_id=row.alert_id,
        kind=AlertKind(alert.kind),
        subject=alert.subject,
        severity=AlertSeverity(alert.severity),
        channel=Channel(row.channel),
        event=NotificationEvent(row.event),
        title=row.title,
        body=row.body,
        created_at=row.created_at,
        attempts=row.attempts,
    )
