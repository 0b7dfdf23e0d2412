"""Bearer-token comparison and the loopback rule of the status API."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from config import Settings
from worker.api.auth import (
    SESSION_MAX_AGE_SECONDS,
    InsecureBind,
    check_bind,
    is_loopback,
    session_valid,
    session_value,
    token_matches,
)
from worker.api.session import MAX_FAILED_SIGNINS, SIGNIN_WINDOW_SECONDS, SigninThrottle


def settings(token: str | None) -> Settings:
    return Settings(api_token=SecretStr(token) if token is not None else None, _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_without_a_token_only_loopback_binds() -> None:
    check_bind(settings(None), "127.0.0.1")
    with pytest.raises(InsecureBind, match="without API_TOKEN"):
        check_bind(settings(None), "0.0.0.0")
    with pytest.raises(InsecureBind):
        check_bind(settings(""), "0.0.0.0")  # empty is unset
    check_bind(settings("t"), "0.0.0.0")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer tok", True),
        ("bearer tok", True),
        ("Bearer  tok", True),
        ("Bearer tok2", False),
        ("Bearer ", False),
        ("tok", False),
        ("Basic tok", False),
        (None, False),
        ("", False),
    ],
)
def test_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches(header, "tok") is ok


def test_signin_throttle_by_address_and_window() -> None:
    throttle = SigninThrottle()
    for i in range(MAX_FAILED_SIGNINS):
        assert throttle.wait_seconds("10.0.0.1", 1000.0 + i) == 0
        throttle.failed("10.0.0.1", 1000.0 + i)
    assert throttle.wait_seconds("10.0.0.1", 1010.0) == SIGNIN_WINDOW_SECONDS - 10
    assert throttle.wait_seconds("10.0.0.2", 1010.0) == 0  # another address
    assert throttle.wait_seconds("10.0.0.1", 1000.0 + SIGNIN_WINDOW_SECONDS) == 0  # first aged out
    throttle.succeeded("10.0.0.1")
    assert throttle.wait_seconds("10.0.0.1", 1001.0) == 0


def test_session_cookie_signature_and_age() -> None:
    value = session_value("tok", 1000)
    assert value.startswith("1000.") and "tok" not in value
    assert session_valid(value, "tok", 1000 + SESSION_MAX_AGE_SECONDS)
    assert not session_valid(value, "tok", 1001 + SESSION_MAX_AGE_SECONDS)
    assert not session_valid(value, "other", 1000)
    assert not session_valid(value, "tok", 900)  # issued in the future
    tampered = value[:-1] + ("1" if value.endswith("0") else "0")
    assert not session_valid(tampered, "tok", 1000)
    for bad in (None, "", "x.y", ".abc", "1000."):
        assert not session_valid(bad, "tok", 1000)
