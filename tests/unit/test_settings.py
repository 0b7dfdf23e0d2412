"""Start-up validation of the settings (config/settings.py): a bad value names itself."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from config import Settings
from config.settings import describe_error


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8081", "https://evo.example.com/api/", "http://[::1]:8081"]
)
def test_evolution_url_may_be_http_or_https(url: str) -> None:
    assert settings(evolution_api_url=url).evolution_api_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://evo.example.com", "http:// or https://"),
        ("evo.example.com:8081", "http:// or https://"),
        ("http://", "http:// or https://"),
        ("https://admin:secret@evo.example.com", "EVOLUTION_API_KEY"),
    ],
)
def test_a_bad_evolution_url_stops_start_up_with_its_name(url: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(evolution_api_url=url)
    message = describe_error(caught.value)
    assert "evolution_api_url" in message.lower() and says in message
    assert "secret" not in message


SECRET = "s3cr3t-value"


@pytest.mark.parametrize(
    ("values", "name", "says"),
    [
        ({"database_url": "postgresql://postgres@127.0.0.1/zd"}, "DATABASE_URL", "psycopg 3"),
        ({"database_url": "postgresql+psycopg2://h/zd"}, "DATABASE_URL", "psycopg 3"),
        ({"database_url": "mysql://h/zd"}, "DATABASE_URL", "psycopg 3"),
        ({"database_url": "not a url"}, "DATABASE_URL", "postgresql+psycopg://"),
        ({"database_url": "postgresql+psycopg://h"}, "DATABASE_URL", "name a database"),
        ({"redis_url": "redis://127.0.0.1:6379/abc"}, "REDIS_URL", "valid Redis URL"),
        ({"redis_url": "http://127.0.0.1:6379"}, "REDIS_URL", "redis://"),
        ({"evolution_api_key": f"{SECRET}\r\nX-Evil: 1"}, "EVOLUTION_API_KEY", "control"),
        ({"evolution_api_key": f"{SECRET}\n"}, "EVOLUTION_API_KEY", "control"),
        ({"evolution_api_key": f"{SECRET} two"}, "EVOLUTION_API_KEY", "visible ASCII"),
        ({"evolution_api_key": f"{SECRET}é"}, "EVOLUTION_API_KEY", "visible ASCII"),
        ({"api_token": f"{SECRET}\x00"}, "API_TOKEN", "control"),
        ({"slack_bot_token": f"xoxb-{SECRET}\r"}, "SLACK_BOT_TOKEN", "control"),
        ({"webhook_token": f"{SECRET}\t"}, "WEBHOOK_TOKEN", "control"),
        ({"flower_basic_auth": f"ops:{SECRET}\n"}, "FLOWER_BASIC_AUTH", "control"),
        ({"slack_channel": "#alerts\nfake line"}, "SLACK_CHANNEL", "control"),
        ({"slack_api_url": "slack.com/api"}, "SLACK_API_URL", "http://"),
        ({"smtp_url": "mail.example.com:25"}, "SMTP_URL", "smtp://host:port"),
        ({"smtp_url": "smtp://mail.example.com:port"}, "SMTP_URL", "smtp://host:port"),
        (
            {"max_countdown_seconds": 3600, "broker_visibility_timeout_seconds": 3600},
            "MAX_COUNTDOWN_SECONDS",
            "below BROKER_VISIBILITY_TIMEOUT_SECONDS",
        ),
    ],
)
def test_config_that_cannot_work_is_refused_in_one_line_naming_it(
    values: dict[str, Any], name: str, says: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**values)
    message = describe_error(caught.value)
    assert message.count("\n") == 0, message
    assert message.startswith(f"invalid configuration: {name}") and says in message, message
    assert SECRET not in message and "Value error" not in message


def test_working_config_values_are_accepted() -> None:
    accepted = settings(
        database_url="postgresql+psycopg://postgres:p%40ss@db.internal:5432/zapdispatch",
        redis_url="rediss://:pw@cache.internal:6380/2",
        evolution_api_key="B6D711FCDE4D4FD5936544120E713976",
        api_token="tok_-.~+/=",
        flower_basic_auth="ops:pass word",
        smtp_url="smtps://user:pw@mail.example.com:465?from=zd@example.com",
        slack_api_url="https://slack.com/api/",
    )
    assert accepted.redis_url.endswith("/2")
