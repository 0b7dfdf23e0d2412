"""Applies alert transitions (store + log) and drains the notification outbox.

Every transition is logged at its severity when, and only when, the store accepted it (so a
racing duplicate is neither stored nor logged twice). Notifications go out oldest first; a
channel that fails is logged once and skipped for the rest of the run, its notifications
staying pending for the next run. Nothing here raises because a channel failed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from models.alert_store import AlertStore
from models.enums import AlertKind, AlertSeverity, Channel, NotificationEvent
from models.views import AlertText, AlertView, PendingNotification, to_datetime
from worker.monitor.grouping import group_pending
from worker.monitor.notifiers import Notifier, NotifierError
from worker.monitor.rules import Open, Remind, Resolve, Transition, channels_for

log = logging.getLogger("zapdispatch.alerts")

_LEVEL = {
    AlertSeverity.INFO: logging.INFO,
    AlertSeverity.WARNING: logging.WARNING,
    AlertSeverity.ERROR: logging.ERROR,
    AlertSeverity.CRITICAL: logging.CRITICAL,
}


@dataclass(frozen=True, slots=True)
class Applied:
    opened: int = 0
    reminded: int = 0
    resolved: int = 0


@dataclass(frozen=True, slots=True)
class Notified:
    """What one drain of the notification outbox did: accepted by their channel, failed,
    and the channels found down."""

    sent: int = 0
    failed: int = 0
    down: tuple[Channel, ...] = ()


class AlertManager:
    """Alert bookkeeping for the health check; `notifiers` are the configured channels."""

    def __init__(self, store: AlertStore, notifiers: Mapping[Channel, Notifier]) -> None:
        self._store = store
        self._notifiers = notifiers

    def open_alerts(self) -> list[AlertView]:
        return self._store.open_alerts()

    def apply(self, transitions: Sequence[Transition], now: float) -> Applied:
        """Record each transition and queue its notifications; `now` in unix seconds."""
        counts = {"opened": 0, "reminded": 0, "resolved": 0}
        for step in transitions:
            if self._apply_one(step, now):
                counts[_label(step)] += 1
        return Applied(**counts)

    def deliver_pending(self, now: float) -> Notified:
        """Send what is owed, oldest first, those of one kind queued by one run as one
        message (worker/monitor/grouping.py); a failing channel is skipped until the next
        run. Counts are outbox rows."""
        sent, failed, down = 0, 0, set[Channel]()
        for outgoing in group_pending(self._store.pending()):
            if outgoing.notification.channel in down:
                continue
            if self._deliver_one(outgoing.notification, now, outgoing.ids):
                sent += len(outgoing.ids)
            else:
                failed += len(outgoing.ids)
                down.add(outgoing.notification.channel)
        return Notified(sent, failed, tuple(sorted(down)))

    # -- transitions ----------------------------------------------------------------------

    def _apply_one(self, step: Transition, now: float) -> bool:
        at = to_datetime(now)
        if isinstance(step, Open):
            c = step.condition
            channels = self._channels(c.kind, c.severity, NotificationEvent.OPENED)
            if (
                self._store.open(c.kind, c.subject, c.severity, c.text, now=at, channels=channels)
                is None
            ):
                return False
            _log(c.severity, "ALERT", c.text)
            return True
        if isinstance(step, Remind):
            c = step.condition
            channels = self._channels(c.kind, c.severity, NotificationEvent.REMINDER)
            if not self._store.remind(step.alert.id, c.text, now=at, channels=channels):
                return False
            _log(c.severity, "ALERT (still open)", c.text)
            return True
        return self._resolve(step, at)

    def _resolve(self, step: Resolve, at: datetime) -> bool:
        a = step.alert
        channels = self._channels(a.kind, a.severity, NotificationEvent.RESOLVED)
        if not self._store.resolve(a.id, step.text, now=at, channels=channels):
            return False
        _log(AlertSeverity.INFO, "ALERT RESOLVED", step.text)
        return True

    def _channels(
        self, kind: AlertKind, severity: AlertSeverity, event: NotificationEvent
    ) -> tuple[Channel, ...]:
        return tuple(c for c in channels_for(kind, severity, event) if c in self._notifiers)

    # -- delivery -------------------------------------------------------------------------

    def _deliver_one(
        self, notification: PendingNotification, now: float, ids: Sequence[int]
    ) -> bool:
        """Send `notification`, which settles the outbox rows `ids`."""
        notifier = self._notifiers.get(notification.channel)
        if notifier is None:
            # The channel was configured when this was queued and is not any more.
            for row in ids:
                self._store.mark_sent(row, to_datetime(now))
            return True
        try:
            notifier.send(notification)
        except NotifierError as exc:
            log.warning(
                "%s is unavailable, %s notification %d stays pending: %s",
                notification.channel,
                notification.event,
                notification.id,
                exc,
            )
            for row in ids:
                self._store.mark_failed(row, str(exc))
            return False
        except Exception as exc:  # a bug must not stop the health check; keep it pending
            log.exception(
                "notification %d on %s failed unexpectedly", notification.id, notification.channel
            )
            for row in ids:
                self._store.mark_failed(row, f"{type(exc).__name__}")
            return False
        for row in ids:
            self._store.mark_sent(row, to_datetime(now))
        return True


def _label(step: Transition) -> str:
    if isinstance(step, Open):
        return "opened"
    return "reminded" if isinstance(step, Remind) else "resolved"


def _log(severity: AlertSeverity, tag: str, text: AlertText) -> None:
    log.log(_LEVEL[severity], "[%s] %s: %s", tag, text.title, text.body)
