"""Typed settings read from the environment (and a `.env` file).

Every variable of the README's configuration table is here. Nothing else in the code base reads
the environment: processes call `load_settings()` once at start-up and pass the object
(or the resources built from it) down.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal, Self
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.connection import parse_url as parse_redis_url
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from config.policy_values import parse_quiet_hours, parse_typing_delay, parse_warmup_schedule

#: The SQLAlchemy driver the code base is written for (psycopg 3).
DATABASE_DRIVER = "postgresql+psycopg"
#: Any ASCII control character (CR and LF included): never valid in a setting.
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
#: What an HTTP header value built from a secret may hold: visible ASCII, no spaces.
HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
#: Secrets sent as (or compared with) an HTTP header value.
HEADER_SECRETS = ("evolution_api_key", "api_token", "webhook_token", "slack_bot_token")
#: Settings written in a small syntax of their own; `PARSERS` (below) checks each.
PARSED = (
    "timezone",
    "warmup_schedule",
    "quiet_hours",
    "typing_delay_ms",
    "ban_reason_codes",
    "opt_out_keywords",
)


class Settings(BaseSettings):
    """All configuration, validated. Durations are in seconds unless the name says otherwise."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432/zapdispatch"
    redis_url: str = "redis://127.0.0.1:6379/0"
    evolution_api_url: str = "http://127.0.0.1:8081"
    evolution_api_key: SecretStr | None = None
    evolution_timeout_seconds: float = Field(default=15.0, gt=0)
    evolution_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    slack_bot_token: SecretStr | None = None
    slack_channel: str = "#alerts"
    slack_api_url: str = "https://slack.com/api/"
    smtp_url: str | None = None
    alert_email_to: str | None = None
    timezone: str = "America/Sao_Paulo"
    api_token: SecretStr | None = None
    flower_basic_auth: SecretStr | None = None

    # Delivery and routing policy.
    message_ttl_seconds: int = Field(default=24 * 3600, gt=0)
    max_send_attempts: int = Field(default=5, ge=1)
    retry_backoff_seconds: float = Field(default=5.0, gt=0)
    retry_backoff_max_seconds: float = Field(default=600.0, gt=0)
    sticky_patience_seconds: float = Field(default=0.0, ge=0)
    recipient_min_gap_seconds: float = Field(default=0.0, ge=0)
    instance_min_interval_seconds: float = Field(default=0.0, ge=0)
    instance_interval_jitter_seconds: float = Field(default=0.0, ge=0)
    requeue_jitter_seconds: float = Field(default=5.0, ge=0)
    max_countdown_seconds: int = Field(default=300, gt=0)
    offline_backoff_seconds: float = Field(default=10.0, gt=0)
    offline_backoff_max_seconds: float = Field(default=300.0, gt=0)
    sending_stuck_after_seconds: int = Field(default=300, gt=0)
    broker_visibility_timeout_seconds: int = Field(default=3600, gt=0)
    # Longest pause between retries of a task that found PostgreSQL or Redis unreachable.
    infrastructure_retry_max_seconds: int = Field(default=120, gt=0)
    default_hourly_cap: int = Field(default=60, gt=0)
    default_daily_cap: int = Field(default=500, gt=0)
    # A send whose outcome is unknown and that Evolution cannot be asked about: `retry`
    # sends it again, `fail` records it failed ("outcome unknown").
    uncertain_send_policy: Literal["retry", "fail"] = "retry"
    # Grace before asking Evolution whether an unknown-outcome send went out (seconds).
    unknown_outcome_grace_seconds: float = Field(default=10.0, ge=0)

    # Sending policy that keeps numbers alive.
    quiet_hours: str = ""  # HH:MM-HH:MM in the recipient's local time; empty: off
    warmup_schedule: str = ""  # comma-separated daily caps for day 1, 2, ...; empty: off
    typing_delay_ms: str = "0-0"  # MIN-MAX milliseconds of "typing..." before each send
    not_on_whatsapp_ttl_days: int = Field(default=30, ge=0)

    # Evolution webhooks in.
    webhook_token: SecretStr | None = None
    public_webhook_url: str | None = None
    ban_reason_codes: str = "402,403,406"
    opt_out_keywords: str = "PARE,SAIR,STOP,CANCELAR,DESCADASTRAR"
    webhook_max_body_bytes: int = Field(default=1_000_000, gt=0)
    # "Accepting but not delivering": a number whose sends of the last N minutes (at least
    # `undelivered_min_sends` of them, the newest at least `undelivered_grace_minutes` old)
    # have no delivery receipt while another number's do.
    undelivered_window_minutes: int = Field(default=30, gt=0)
    undelivered_min_sends: int = Field(default=5, ge=1)
    undelivered_grace_minutes: int = Field(default=2, ge=0)

    # Workers.
    worker_dead_after_seconds: float = Field(default=30.0, gt=0)

    # Monitoring.
    health_check_interval_seconds: float = Field(default=60.0, gt=0)
    sweep_interval_seconds: float = Field(default=15.0, gt=0)
    alert_repeat_minutes: int = Field(default=60, gt=0)
    capacity_alert_pct: float = Field(default=80.0, gt=0, le=100)
    circuit_failure_threshold: int = Field(default=5, ge=1)
    circuit_cooldown_seconds: float = Field(default=120.0, gt=0)

    # Tests and benchmarks only: lets a Redis key stand in for the Redis server clock.
    test_clock_enabled: bool = False

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        """No setting holds a control character: a CR/LF in a header value or a log line
        forges headers or lines. The value itself is never echoed (it may be a secret)."""
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str) and CONTROL_CHARACTER.search(text):
            raise ValueError("must not contain control characters (CR, LF, tab, ...)")
        return value

    @field_validator(*HEADER_SECRETS, mode="after")
    @classmethod
    def _header_safe(cls, value: SecretStr | None) -> SecretStr | None:
        """Sent as an HTTP header value: visible ASCII characters only, no spaces."""
        secret = value.get_secret_value() if value is not None else ""
        if secret and not HEADER_SAFE.fullmatch(secret):  # empty means unset
            raise ValueError("must be visible ASCII characters without spaces (an HTTP header)")
        return value

    @field_validator(*PARSED, mode="after")
    @classmethod
    def _parses(cls, value: str, info: ValidationInfo) -> str:
        """Settings written in a small syntax of their own: each must parse (PARSED)."""
        PARSERS[str(info.field_name)](value)
        return value

    @property
    def warmup_ramp(self) -> tuple[int, ...]:
        """WARMUP_SCHEDULE: daily caps for a number's day 1, 2, …; () when off."""
        return parse_warmup_schedule(self.warmup_schedule)

    @property
    def quiet_window(self) -> tuple[int, int] | None:
        """QUIET_HOURS as (start, end) minutes after local midnight; None when off."""
        return parse_quiet_hours(self.quiet_hours)

    @property
    def typing_delay_range(self) -> tuple[int, int]:
        """TYPING_DELAY_MS as (min, max) milliseconds; (0, 0) when off."""
        return parse_typing_delay(self.typing_delay_ms)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        """A `postgresql+psycopg://` URL: the psycopg 3 driver is the only one installed."""
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"must be a {DATABASE_DRIVER}://host/database URL") from None
        if url.drivername != DATABASE_DRIVER:
            raise ValueError(
                f"must use the psycopg 3 driver: {DATABASE_DRIVER}://..., not {url.drivername}://"
            )
        if not url.database:
            raise ValueError("must name a database (…/zapdispatch)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        """`redis://`, `rediss://` or `unix://`, parseable by redis-py, database a number."""
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        try:
            parse_redis_url(value)
            database = urlsplit(value).path.strip("/") if value.startswith("redis") else ""
        except ValueError as exc:
            raise ValueError(f"is not a valid Redis URL: {exc}") from None
        if database and not database.isdigit():
            # redis-py would use database 0 and kombu refuse it: broker and limiter apart.
            raise ValueError("is not a valid Redis URL: the database must be a number (/0)")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname or port == -1:
            raise ValueError("must look like smtp://host:port or smtps://host:port")
        return value

    @model_validator(mode="after")
    def _countdown_below_visibility(self) -> Self:
        """A countdown longer than the visibility timeout would be restored (sent twice)."""
        if self.max_countdown_seconds >= self.broker_visibility_timeout_seconds:
            raise ValueError(
                "MAX_COUNTDOWN_SECONDS must be below BROKER_VISIBILITY_TIMEOUT_SECONDS"
            )
        return self

    @field_validator("slack_api_url", "evolution_api_url", "public_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """An http(s) URL with a host; EVOLUTION_API_URL without credentials (its key is
        EVOLUTION_API_KEY); PUBLIC_WEBHOOK_URL may be unset (None or empty)."""
        if info.field_name == "public_webhook_url" and not value:
            return None
        parts = urlsplit(value or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL")
        if info.field_name == "evolution_api_url" and (parts.username or parts.password):
            raise ValueError("must not carry credentials: set EVOLUTION_API_KEY instead")
        return value

    @field_validator("flower_basic_auth")
    @classmethod
    def _user_colon_password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and ":" not in value.get_secret_value():
            raise ValueError("must be user:password")
        return value

    @model_validator(mode="after")
    def _stuck_after_the_longest_send(self) -> Settings:
        """A claim older than SENDING_STUCK_AFTER_SECONDS is taken for a dead worker's, so
        no send may last that long: its deadline (connect timeout + read timeout, which
        holds the typing delay Evolution waits before answering) must end before."""
        longest = self.send_deadline_seconds
        if self.sending_stuck_after_seconds <= longest:
            raise ValueError(
                f"SENDING_STUCK_AFTER_SECONDS ({self.sending_stuck_after_seconds}) must be above "
                f"the longest send, {longest:g} s (EVOLUTION_CONNECT_TIMEOUT_SECONDS "
                f"{self.evolution_connect_timeout_seconds:g} + EVOLUTION_TIMEOUT_SECONDS "
                f"{self.evolution_timeout_seconds:g})"
            )
        return self

    @model_validator(mode="after")
    def _typing_delay_fits_the_send_timeout(self) -> Settings:
        """Evolution answers a sendText only after its `delay`: a read timeout that is not
        above the longest delay would time out sends that are in fact going out."""
        longest_ms = self.typing_delay_range[1]
        if longest_ms / 1000 >= self.evolution_timeout_seconds:
            raise ValueError(
                f"TYPING_DELAY_MS allows {longest_ms} ms but EVOLUTION_TIMEOUT_SECONDS is "
                f"{self.evolution_timeout_seconds:g} s: Evolution answers a send only after its "
                "delay, so raise the timeout above the longest delay"
            )
        return self

    @property
    def send_deadline_seconds(self) -> float:
        """The longest one send can take, seconds: the connect timeout plus the read
        timeout (which holds Evolution's typing delay), all phases together."""
        return self.evolution_connect_timeout_seconds + self.evolution_timeout_seconds

    @property
    def zone(self) -> ZoneInfo:
        """The zone where hourly and daily windows reset."""
        return ZoneInfo(self.timezone)

    @property
    def ban_codes(self) -> frozenset[int]:
        """Disconnection reason codes that mean the number is banned."""
        return parse_codes(self.ban_reason_codes)

    @property
    def opt_out_words(self) -> frozenset[str]:
        """OPT_OUT_KEYWORDS folded by `fold_text` (compare replies folded the same way)."""
        return parse_keywords(self.opt_out_keywords)

    @property
    def webhook_secret(self) -> str | None:
        """WEBHOOK_TOKEN, or None when unset or empty (webhooks off)."""
        token = self.webhook_token.get_secret_value() if self.webhook_token else ""
        return token or None


def parse_codes(value: str) -> frozenset[int]:
    """`"402, 403,406"` → {402, 403, 406}; empty → no code; anything else is a ValueError."""
    codes = set()
    for part in value.split(","):
        if not part.strip():
            continue
        if not part.strip().isdigit():
            raise ValueError(f"{part.strip()!r} is not a reason code (comma-separated integers)")
        codes.add(int(part))
    return frozenset(codes)


def fold_text(text: str) -> str:
    """Trimmed, case-folded, without accents (NFKD, combining marks dropped): "Paré " → "pare"."""
    decomposed = unicodedata.normalize("NFKD", text.strip())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def parse_keywords(value: str) -> frozenset[str]:
    """Comma-separated words, folded by `fold_text`; blanks dropped."""
    return frozenset(w for w in (fold_text(part) for part in value.split(",")) if w)


def check_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc


def check_keywords(value: str) -> None:
    if not parse_keywords(value):
        raise ValueError("must name at least one word")


PARSERS: dict[str, Callable[[str], object]] = {
    "timezone": check_timezone,
    "warmup_schedule": parse_warmup_schedule,
    "quiet_hours": parse_quiet_hours,
    "typing_delay_ms": parse_typing_delay,
    "ban_reason_codes": parse_codes,
    "opt_out_keywords": check_keywords,
}


def describe_error(exc: ValidationError) -> str:
    """One line per invalid variable, naming it as it is spelled in the environment."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            message = f"{str(error['loc'][0]).upper()}: {message}"
        lines.append(f"invalid configuration: {message}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read and validate the environment once; exit with a clear message when it is invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        print(describe_error(exc), file=sys.stderr)
        raise SystemExit(2) from None
