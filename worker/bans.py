"""Operator controls shared by the CLI and the status API: ban and unban an instance.

Ban: status `banned`, its contacts lose their sticky preference (reassigned on their next
send); the health check opens the ban alert. Unban: status back to `disconnected` (not
`connected`: nothing has seen the number since), so routing leaves it alone until the
health check or a webhook sees it open; the open ban alert is resolved at once, with a
resolution notice queued on the channels that announced it (Slack when configured).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from config import Settings
from models.alert_store import AlertStore
from models.enums import AlertKind, Channel, InstanceStatus, NotificationEvent
from models.instance_store import InstanceStore
from models.views import AlertText
from worker.monitor.rules import channels_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BanResult:
    name: str
    contacts_migrated: int


@dataclass(frozen=True, slots=True)
class UnbanResult:
    name: str
    was_banned: bool
    alert_resolved: bool


def ban_instance(instances: InstanceStore, name: str, *, by: str, now: datetime) -> BanResult:
    """Raises `UnknownInstance` for an unknown name."""
    moved = instances.ban(name, f"banned by operator ({by})", now)
    log.info("instance %s banned by operator (%s); %d contact(s) migrated", name, by, moved)
    return BanResult(name, moved)


def unban_instance(
    instances: InstanceStore,
    alerts: AlertStore,
    name: str,
    *,
    by: str,
    now: datetime,
    channels: Iterable[Channel],
) -> UnbanResult:
    """`banned` → `disconnected` until seen, and its open ban alert resolved. `channels`:
    the configured alert channels. Raises `UnknownInstance` for an unknown name."""
    if instances.get(name).status is not InstanceStatus.BANNED:
        return UnbanResult(name, was_banned=False, alert_resolved=False)
    instances.set_status(
        name, InstanceStatus.DISCONNECTED, f"unbanned by operator ({by}); until seen", now
    )
    resolved = False
    for alert in alerts.open_alerts():
        if alert.kind is AlertKind.INSTANCE_BANNED and alert.subject == name:
            configured = set(channels)
            owed = channels_for(alert.kind, alert.severity, NotificationEvent.RESOLVED)
            text = AlertText(
                f"Resolved: instance {name} unbanned",
                f"{name} was unbanned by an operator; it is used again once seen connected.",
            )
            resolved = alerts.resolve(
                alert.id, text, now=now, channels=[c for c in owed if c in configured]
            )
    log.info("instance %s unbanned by operator (%s)", name, by)
    return UnbanResult(name, was_banned=True, alert_resolved=resolved)


def configured_channels(settings: Settings) -> list[Channel]:
    """The alert channels that are set up: Slack with a bot token, email with SMTP settings."""
    email = bool(settings.smtp_url and settings.alert_email_to)
    on = ((Channel.SLACK, settings.slack_bot_token is not None), (Channel.EMAIL, email))
    return [channel for channel, configured in on if configured]
