"""Typing delay: the sendText `delay` field and the settings that must account for it."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import ValidationError

from config import Settings
from tests.unit.test_evolution_client import NUMBER, SENT_BODY, client_for


def sent_body(delay_ms: int) -> dict[str, object]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json=SENT_BODY)

    with client_for(handler) as client:
        client.send_text("inst-a", NUMBER, "hi", delay_ms=delay_ms)
    body: dict[str, object] = json.loads(seen[0].content)
    return body


def test_delay_is_an_integer_field_of_the_body_only_when_positive() -> None:
    assert sent_body(1500) == {"number": NUMBER, "text": "hi", "delay": 1500}
    assert sent_body(0) == {"number": NUMBER, "text": "hi"}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg,arg-type]


def test_a_timeout_not_above_the_longest_delay_is_refused() -> None:
    with pytest.raises(ValidationError, match="EVOLUTION_TIMEOUT_SECONDS is 3 s"):
        settings(typing_delay_ms="1000-3000", evolution_timeout_seconds=3)
    assert settings(typing_delay_ms="1000-3000").typing_delay_range == (1000, 3000)
    with pytest.raises(ValidationError, match="typing_delay_ms"):
        settings(typing_delay_ms="3000-1000")


def test_the_stuck_threshold_is_above_the_whole_send_which_holds_the_delay() -> None:
    """The delay runs inside the read timeout; the stuck threshold must exceed connect +
    read timeouts, whatever the delay."""
    ok = settings(
        typing_delay_ms="0-10000",
        evolution_connect_timeout_seconds=5,
        evolution_timeout_seconds=15,
        sending_stuck_after_seconds=25,
    )
    assert ok.send_deadline_seconds == 20
    with pytest.raises(ValidationError, match="SENDING_STUCK_AFTER_SECONDS"):
        settings(
            typing_delay_ms="0-10000",
            evolution_connect_timeout_seconds=5,
            evolution_timeout_seconds=15,
            sending_stuck_after_seconds=20,
        )
