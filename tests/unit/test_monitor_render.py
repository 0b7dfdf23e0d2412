"""How notifications read: Slack escaping, emojis, urgency, email; SMTP_URL parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.enums import AlertKind, AlertSeverity, Channel, NotificationEvent
from models.views import PendingNotification
from worker.monitor.notifiers import parse_smtp_url
from worker.monitor.render import email_message, slack_escape, slack_text


def note(
    kind: AlertKind = AlertKind.INSTANCE_OFFLINE,
    severity: AlertSeverity = AlertSeverity.ERROR,
    event: NotificationEvent = NotificationEvent.OPENED,
    title: str = "Instance <a&b> offline",
) -> PendingNotification:
    return PendingNotification(
        id=1,
        alert_id=1,
        kind=kind,
        subject="a",
        severity=severity,
        channel=Channel.SLACK,
        event=event,
        title=title,
        body="name <a&b> > x",
        created_at=datetime(2026, 11, 23, 13, 0, tzinfo=UTC),
        attempts=0,
    )


def test_slack_escape() -> None:
    assert slack_escape("a & <b> &amp;") == "a &amp; &lt;b&gt; &amp;amp;"


def test_slack_text_escapes_names_and_uses_severity_emoji() -> None:
    text = slack_text(note())
    assert text.startswith("🔴 *Instance &lt;a&amp;b&gt; offline*\n")
    assert "name &lt;a&amp;b&gt; &gt; x" in text
    assert "<a&b>" not in text
    assert "2026-11-23 13:00:00 UTC" in text


@pytest.mark.parametrize(
    ("severity", "emoji"),
    [(AlertSeverity.WARNING, "⚠️"), (AlertSeverity.ERROR, "🔴"), (AlertSeverity.CRITICAL, "🚨")],
)
def test_severity_emojis(severity: AlertSeverity, emoji: str) -> None:
    assert slack_text(note(severity=severity)).startswith(emoji)


def test_urgent_all_offline_mentions_channel_and_resolved_does_not() -> None:
    opened = slack_text(note(kind=AlertKind.ALL_OFFLINE, severity=AlertSeverity.CRITICAL))
    resolved = slack_text(note(kind=AlertKind.ALL_OFFLINE, event=NotificationEvent.RESOLVED))
    assert opened.startswith("<!channel> 🚨")
    assert resolved.startswith("✅")


def test_reminder_headline() -> None:
    assert "*Still open: x*" in slack_text(note(event=NotificationEvent.REMINDER, title="x"))


def test_email_message() -> None:
    message = email_message(
        note(severity=AlertSeverity.CRITICAL, title="Instance a BANNED"),
        "zd@example.com",
        ["ops@example.com", "b@example.com"],
    )
    assert message["Subject"] == "[zapdispatch] CRITICAL: Instance a BANNED"
    assert message["To"] == "ops@example.com, b@example.com"
    assert "name <a&b> > x" in message.get_content()


def test_parse_smtp_url() -> None:
    plain = parse_smtp_url("smtp://127.0.0.1:2525")
    assert (plain.host, plain.port, plain.tls, plain.username) == ("127.0.0.1", 2525, False, None)
    full = parse_smtp_url("smtps://u%40x:p%2Fw@mail.example.com?from=zd@example.com")
    assert (full.port, full.tls, full.username, full.password, full.sender) == (
        465,
        True,
        "u@x",
        "p/w",
        "zd@example.com",
    )
    assert "p/w" not in repr(full)
    assert parse_smtp_url("smtp://h?starttls=1").starttls
    with pytest.raises(ValueError):
        parse_smtp_url("http://h:25")
