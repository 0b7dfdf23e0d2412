"""Alert channels: Slack (slack-sdk `chat.postMessage`) and email (SMTP).

Each notifier converts its library's failures into `NotifierError`, once, here:

    NotifierError
      ChannelUnavailable   down, timed out, 5xx, still rate limited after the retries
      ChannelRejected      the channel answered no (bad token, unknown Slack channel, SMTP 5xx)

Either way the notification stays pending and is retried on the next health check.
Tokens and SMTP passwords never appear in messages or logs.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    RetryHandler,
    RetryIntervalCalculator,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator

from config import Settings
from models.enums import Channel
from models.views import PendingNotification
from worker.monitor.render import email_message, slack_text

log = logging.getLogger("zapdispatch.monitor")

#: Seconds each Slack or SMTP call may take.
CHANNEL_TIMEOUT_SECONDS = 10
#: Extra attempts the Slack retry handlers make (rate limit, connection errors).
SLACK_MAX_RETRIES = 2
DEFAULT_SENDER = "zapdispatch@localhost"


class NotifierError(Exception):
    """A channel did not accept a notification."""


class ChannelUnavailable(NotifierError):
    """The channel is down, slow or rate limiting; try again later."""


class ChannelRejected(NotifierError):
    """The channel refused the notification (configuration: token, channel, address)."""


class Notifier(Protocol):
    channel: Channel

    def send(self, notification: PendingNotification) -> None:
        """Deliver, or raise NotifierError."""


# --- Slack ------------------------------------------------------------------------------


def slack_retry_handlers(
    max_retries: int = SLACK_MAX_RETRIES, interval: RetryIntervalCalculator | None = None
) -> list[RetryHandler]:
    """Retry on 429 (after Retry-After) and on connection errors (with backoff)."""
    backoff = interval or BackoffRetryIntervalCalculator(backoff_factor=0.5)
    return [
        RateLimitErrorRetryHandler(max_retry_count=max_retries),
        ConnectionErrorRetryHandler(max_retry_count=max_retries, interval_calculator=backoff),
    ]


def slack_client(
    token: str, base_url: str, *, retry_handlers: list[RetryHandler] | None = None
) -> WebClient:
    """A WebClient for `base_url` (SLACK_API_URL; it must end with a slash)."""
    return WebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=CHANNEL_TIMEOUT_SECONDS,
        retry_handlers=retry_handlers if retry_handlers is not None else slack_retry_handlers(),
    )


class SlackNotifier:
    channel = Channel.SLACK

    def __init__(self, client: WebClient, slack_channel: str) -> None:
        self._client = client
        self._slack_channel = slack_channel

    def send(self, notification: PendingNotification) -> None:
        try:
            self._client.chat_postMessage(
                channel=self._slack_channel,
                text=slack_text(notification),
                unfurl_links=False,
                unfurl_media=False,
            )
        except SlackApiError as exc:
            raise _slack_api_error(exc) from None
        except (SlackClientError, OSError, ValueError) as exc:
            raise ChannelUnavailable(f"Slack unreachable: {type(exc).__name__}") from None


def _slack_api_error(exc: SlackApiError) -> NotifierError:
    status = exc.response.status_code
    error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
    detail = f"Slack answered HTTP {status}" + (f" ({error})" if error else "")
    if status == 429 or status >= 500:
        return ChannelUnavailable(detail)
    return ChannelRejected(detail)


# --- email ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where to send email. `tls`: implicit TLS (smtps://); `starttls`: upgrade after HELO."""

    host: str
    port: int
    tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = DEFAULT_SENDER

    def __repr__(self) -> str:  # never show the password
        return f"SmtpTarget({self.host}:{self.port}, tls={self.tls}, user={self.username!r})"


def parse_smtp_url(url: str) -> SmtpTarget:
    """`smtp://[user:password@]host[:port][?starttls=1&from=addr]` or `smtps://...`.

    Ports default to 25 (smtp) and 465 (smtps). Raises ValueError for other schemes.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("SMTP_URL must look like smtp://host:port or smtps://host:port")
    query = parse_qs(parts.query)
    tls = parts.scheme == "smtps"
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if tls else 25),
        tls=tls,
        starttls=query.get("starttls", ["0"])[0].lower() in ("1", "true", "yes"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=query.get("from", [DEFAULT_SENDER])[0],
    )


class EmailNotifier:
    channel = Channel.EMAIL

    def __init__(self, target: SmtpTarget, to: list[str]) -> None:
        self._target = target
        self._to = to

    def send(self, notification: PendingNotification) -> None:
        message = email_message(notification, self._target.sender, self._to)
        try:
            with self._connect() as smtp:
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise _smtp_error(codes, f"SMTP server refused the recipients ({codes})") from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_error([exc.smtp_code], f"SMTP server answered {exc.smtp_code}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelUnavailable(f"SMTP unreachable: {type(exc).__name__}") from None

    def _connect(self) -> smtplib.SMTP:
        t = self._target
        if t.tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                t.host,
                t.port,
                timeout=CHANNEL_TIMEOUT_SECONDS,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(t.host, t.port, timeout=CHANNEL_TIMEOUT_SECONDS)
        if t.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if t.username and t.password:
            smtp.login(t.username, t.password)
        return smtp


def _smtp_error(codes: list[int], detail: str) -> NotifierError:
    """5xx replies are permanent (rejected); 4xx and others may pass later."""
    permanent = bool(codes) and all(500 <= code < 600 for code in codes)
    return ChannelRejected(detail) if permanent else ChannelUnavailable(detail)


# --- from settings ----------------------------------------------------------------------


_announced = False


def channel_warnings(settings: Settings) -> list[str]:
    """What is switched off, in words (no secrets)."""
    warnings = []
    if settings.slack_bot_token is None:
        warnings.append(
            "Slack is not configured (SLACK_BOT_TOKEN unset): alerts are logged and recorded only"
        )
    if not settings.smtp_url or not settings.alert_email_to:
        warnings.append(
            "email alerts are off (SMTP_URL or ALERT_EMAIL_TO unset): ban alerts "
            "go to Slack and the log only"
        )
    return warnings


def announce_channels(settings: Settings) -> None:
    """Log once per process what is off. A prefork worker calls it before forking
    (`worker_init`), so its children inherit the flag and stay quiet."""
    global _announced  # noqa: PLW0603 - once per process, by design
    if _announced:
        return
    _announced = True
    for warning in channel_warnings(settings):
        log.warning(warning)


def build_notifiers(settings: Settings) -> Mapping[Channel, Notifier]:
    """The configured channels (announcing, once per process, the ones that are off)."""
    announce_channels(settings)
    notifiers: dict[Channel, Notifier] = {}
    if settings.slack_bot_token is not None:
        client = slack_client(settings.slack_bot_token.get_secret_value(), settings.slack_api_url)
        notifiers[Channel.SLACK] = SlackNotifier(client, settings.slack_channel)
    email = _email_notifier(settings)
    if email is not None:
        notifiers[Channel.EMAIL] = email
    return notifiers


def _email_notifier(settings: Settings) -> EmailNotifier | None:
    if not settings.smtp_url or not settings.alert_email_to:
        return None
    try:
        target = parse_smtp_url(settings.smtp_url)
    except ValueError as exc:
        log.error("email alerts are off: %s", exc)
        return None
    recipients = [a.strip() for a in settings.alert_email_to.split(",") if a.strip()]
    return EmailNotifier(target, recipients)
