"""How a notification reads on each channel. Pure: no I/O, no clock."""

from __future__ import annotations

from email.message import EmailMessage

from models.enums import AlertSeverity, NotificationEvent
from models.views import PendingNotification
from worker.monitor.rules import urgent

SEVERITY_EMOJI = {
    AlertSeverity.INFO: "ℹ️",
    AlertSeverity.WARNING: "⚠️",
    AlertSeverity.ERROR: "🔴",
    AlertSeverity.CRITICAL: "🚨",
}
RESOLVED_EMOJI = "✅"

_SLACK_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))


def slack_escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn reserves (`&` first, so it is not doubled)."""
    for raw, escaped in _SLACK_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def emoji_for(notification: PendingNotification) -> str:
    if notification.event is NotificationEvent.RESOLVED:
        return RESOLVED_EMOJI
    return SEVERITY_EMOJI[notification.severity]


def headline(notification: PendingNotification) -> str:
    """The title, prefixed for reminders."""
    if notification.event is NotificationEvent.REMINDER:
        return f"Still open: {notification.title}"
    return notification.title


def slack_text(notification: PendingNotification) -> str:
    """`<emoji> *title*\\nbody\\n_(time UTC)_`, with names escaped; urgent ones mention @channel."""
    mention = "<!channel> " if urgent(notification.kind, notification.event) else ""
    when = notification.created_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"{mention}{emoji_for(notification)} *{slack_escape(headline(notification))}*\n"
        f"{slack_escape(notification.body)}\n_({when})_"
    )


def email_message(notification: PendingNotification, sender: str, to: list[str]) -> EmailMessage:
    """A plain-text email for one notification."""
    message = EmailMessage()
    severity = notification.severity.value.upper()
    message["Subject"] = f"[zapdispatch] {severity}: {headline(notification)}"
    message["From"] = sender
    message["To"] = ", ".join(to)
    when = notification.created_at.isoformat()
    message.set_content(f"{notification.body}\n\nSeverity: {severity}\nAt: {when}\n")
    return message
