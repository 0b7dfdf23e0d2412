"""Auth for the status API: a bearer token or a signed session cookie, the CSRF rule for
cookie-authenticated writes, and the loopback rule when no token is set.

Session cookie: `zd_session=<issued unix seconds>.<hex HMAC-SHA256(API_TOKEN, "session:" +
issued)>`, set by `POST /auth/signin` (HttpOnly, SameSite=Strict, Secure over https) and
valid for `SESSION_MAX_AGE_SECONDS`. It never holds the token itself; changing API_TOKEN
signs every session out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable

from fastapi import HTTPException, Request, Response, status

from config import Settings

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
SESSION_COOKIE = "zd_session"
#: A session lasts this long (seconds) from sign-in: one working day.
SESSION_MAX_AGE_SECONDS = 12 * 3600
#: Cookie-authenticated writes carry this header (a cross-site form cannot set it) or come
#: from the API's own origin.
CSRF_HEADER = "x-requested-with"
CSRF_HEADER_VALUE = "zapdispatch"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


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
    return secret_matches(given.strip(), token)


def secret_matches(given: str, token: str) -> bool:
    """`given == token`, in constant time."""
    return hmac.compare_digest(given.encode(), token.encode())


def _signature(token: str, issued: int) -> str:
    return hmac.new(token.encode(), f"session:{issued}".encode(), hashlib.sha256).hexdigest()


def session_value(token: str, issued: int) -> str:
    """The cookie value for a session that started at `issued` (unix seconds)."""
    return f"{issued}.{_signature(token, issued)}"


def session_valid(value: str | None, token: str, now: float) -> bool:
    """A cookie value signed with `token` and issued at most `SESSION_MAX_AGE_SECONDS` before
    `now` (unix seconds); the signature compared in constant time."""
    issued_text, _, signature = (value or "").partition(".")
    if not issued_text.isdigit() or not signature:
        return False
    issued = int(issued_text)
    if not issued <= now + 60 or now - issued > SESSION_MAX_AGE_SECONDS:
        return False
    return hmac.compare_digest(signature.encode(), _signature(token, issued).encode())


def same_origin(request: Request) -> bool:
    """The request's `Origin` (or, without one, `Referer`) names this very scheme://host."""
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == own
    referer = request.headers.get("referer", "")
    return referer == own or referer.startswith(own + "/")


def csrf_ok(request: Request) -> bool:
    """A cookie may authenticate a read; a write only with the custom header or same origin."""
    if request.method in SAFE_METHODS:
        return True
    return request.headers.get(CSRF_HEADER) == CSRF_HEADER_VALUE or same_origin(request)


def set_session_cookie(response: Response, request: Request, token: str, now: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        session_value(token, int(now)),
        max_age=SESSION_MAX_AGE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def request_authenticated(request: Request, token: str, now: float) -> bool:
    """The bearer header, or a valid session cookie (for writes: with the CSRF rule)."""
    if token_matches(request.headers.get("authorization"), token):
        return True
    return session_valid(request.cookies.get(SESSION_COOKIE), token, now) and csrf_ok(request)


def bearer_guard(
    settings: Settings, clock: Callable[[], float] = time.time
) -> Callable[[Request], None]:
    """A FastAPI dependency: with API_TOKEN set, a request with neither a right bearer token
    nor a valid session cookie (plus the CSRF rule for writes) is a 401."""
    token = configured_token(settings)

    def require_token(request: Request) -> None:
        if token is None or request_authenticated(request, token, clock()):
            return
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or invalid bearer token or session",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return require_token
