"""Bearer-token auth for the status API, and the loopback rule when no token is set."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from fastapi import HTTPException, Request, status

from config import Settings

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class InsecureBind(ValueError):
    """Refusing to serve without API_TOKEN on a non-loopback address."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or a loopback name; anything else (0.0.0.0 too) is not."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def configured_token(settings: Settings) -> str | None:
    """API_TOKEN, or None when unset or empty."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return token or None


def check_bind(settings: Settings, host: str) -> None:
    """Raise `InsecureBind` when there is no API_TOKEN and `host` is not loopback."""
    if configured_token(settings) is None and not is_loopback(host):
        raise InsecureBind(
            f"refusing to bind the status API to {host!r} without API_TOKEN: set API_TOKEN "
            "or bind to 127.0.0.1"
        )


def token_matches(header: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def bearer_guard(settings: Settings) -> Callable[[Request], None]:
    """A FastAPI dependency: with API_TOKEN set, a missing or wrong token is a 401."""
    token = configured_token(settings)

    def require_token(request: Request) -> None:
        if token is None or token_matches(request.headers.get("authorization"), token):
            return
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return require_token
