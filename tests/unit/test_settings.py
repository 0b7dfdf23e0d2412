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
