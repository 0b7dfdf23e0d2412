"""Slack and email notifiers against the local fakes: success, retries, error mapping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator

from models.enums import AlertKind, AlertSeverity, Channel, NotificationEvent
from models.views import PendingNotification
from tests.fakes.slack_server import FakeSlack, running_fake_slack
from tests.fakes.smtp_sink import SmtpSink, running_smtp_sink
from worker.monitor.notifiers import (
    ChannelRejected,
    ChannelUnavailable,
    EmailNotifier,
    SlackNotifier,
    SmtpTarget,
    parse_smtp_url,
    slack_client,
    slack_retry_handlers,
)

NOTE = PendingNotification(
    id=1,
    alert_id=1,
    kind=AlertKind.INSTANCE_BANNED,
    subject="a&b",
    severity=AlertSeverity.CRITICAL,
    channel=Channel.SLACK,
    event=NotificationEvent.OPENED,
    title="Instance a&b BANNED",
    body="banned",
    created_at=datetime(2026, 11, 23, tzinfo=UTC),
    attempts=0,
)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with running_fake_slack() as fake:
        yield fake


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with running_smtp_sink() as fake:
        yield fake


def notifier(
    slack: FakeSlack, token: str | None = None, base_url: str | None = None
) -> SlackNotifier:
    quick = slack_retry_handlers(interval=FixedValueRetryIntervalCalculator(0.01))
    client = slack_client(token or slack.token, base_url or slack.base_url, retry_handlers=quick)
    return SlackNotifier(client, "#alerts")


def test_slack_posts_escaped_text_to_the_channel(slack: FakeSlack) -> None:
    notifier(slack, base_url=slack.base_url.rstrip("/")).send(NOTE)
    assert slack.messages[0]["channel"] == "#alerts"
    assert slack.messages[0]["text"].startswith("🚨 *Instance a&amp;b BANNED*")


def test_slack_bad_token_is_rejected(slack: FakeSlack) -> None:
    with pytest.raises(ChannelRejected, match="invalid_auth") as caught:
        notifier(slack, token="xoxb-wrong").send(NOTE)
    assert "xoxb" not in str(caught.value)


def test_slack_500_is_unavailable(slack: FakeSlack) -> None:
    slack.mode = "http_500"
    with pytest.raises(ChannelUnavailable, match="HTTP 500"):
        notifier(slack).send(NOTE)


def test_slack_connection_errors_are_retried_then_unavailable(slack: FakeSlack) -> None:
    slack.mode = "reset"
    with pytest.raises(ChannelUnavailable):
        notifier(slack).send(NOTE)
    assert slack.requests == 3  # one call and the handler's two retries


def test_slack_rate_limit_retried(slack: FakeSlack) -> None:
    slack.rate_limit_next(1)
    notifier(slack).send(NOTE)
    assert slack.requests == 2 and len(slack.messages) == 1


def test_email_reaches_the_sink(sink: SmtpSink) -> None:
    EmailNotifier(parse_smtp_url(sink.url + "?from=zd@example.com"), ["ops@example.com"]).send(NOTE)
    message = sink.messages[0]
    assert (message["From"], message["To"]) == ("zd@example.com", "ops@example.com")
    assert message["Subject"] == "[zapdispatch] CRITICAL: Instance a&b BANNED"


def test_email_refused_or_down_is_unavailable(sink: SmtpSink) -> None:
    sink.refuse = True
    with pytest.raises(ChannelUnavailable, match="451"):
        EmailNotifier(parse_smtp_url(sink.url), ["ops@example.com"]).send(NOTE)
    with pytest.raises(ChannelUnavailable, match="unreachable"):
        EmailNotifier(SmtpTarget("127.0.0.1", 9), ["ops@example.com"]).send(NOTE)
