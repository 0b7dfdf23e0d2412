"""Bearer-token comparison and the loopback rule of the status API."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from config import Settings
from worker.api.auth import InsecureBind, check_bind, is_loopback, token_matches


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
