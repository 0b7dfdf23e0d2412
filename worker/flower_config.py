"""Flower from our settings: `celery -A worker flower` with basic auth from FLOWER_BASIC_AUTH.

Flower reads its options from `FLOWER_*` environment variables (`FLOWER_BASIC_AUTH` maps to
its `basic_auth` option, see flower/command.py `apply_env_options`) after `-A worker` has
imported the app. A value that only lives in `.env` (read by our settings) is therefore
copied into this process's environment when the app is imported, so Flower sees it too.
A value already in the environment wins.

Flower shows every task's arguments, so it is never open beyond loopback without auth:
once its options are parsed (a tornado parse callback, before it listens), Flower with
neither `basic_auth` nor OAuth (`auth`) listens on 127.0.0.1 when no address was given, and
refuses to start (one line, exit 2) when told to listen on any other address. Flower's
`/metrics` has no login check of its own; with auth on, it gets one.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import MutableMapping
from typing import Any

from config import Settings

FLOWER_BASIC_AUTH = "FLOWER_BASIC_AUTH"
#: Where Flower without auth listens.
LOOPBACK = "127.0.0.1"


class InsecureFlower(SystemExit):
    """Flower told to listen beyond loopback without FLOWER_BASIC_AUTH (exit status 2)."""


def export_flower_env(settings: Settings, environ: MutableMapping[str, str]) -> bool:
    """Set FLOWER_BASIC_AUTH in `environ` from `settings` if absent; True if it was set."""
    if settings.flower_basic_auth is None or environ.get(FLOWER_BASIC_AUTH):
        return False
    environ[FLOWER_BASIC_AUTH] = settings.flower_basic_auth.get_secret_value()
    return True


def is_loopback(address: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def bind_address(address: str, authenticated: bool) -> str:
    """The address Flower may listen on: any with auth; without, loopback only (the
    default, all interfaces, becomes 127.0.0.1; another address is refused)."""
    if authenticated:
        return address
    if not address:
        return LOOPBACK
    if not is_loopback(address):
        print(
            f"invalid configuration: FLOWER_BASIC_AUTH: required for Flower to listen on "
            f"{address!r} (without it, Flower listens on {LOOPBACK} only)",
            file=sys.stderr,
        )
        raise InsecureFlower(2)
    return address


def guard_flower_options() -> None:
    """Hold Flower to `bind_address` and protect its `/metrics`, once its options are
    parsed. Does nothing in processes that are not Flower (tornado never parses there)."""
    try:
        from tornado.options import options  # noqa: PLC0415 - Flower's own option parser
    except ImportError:  # pragma: no cover - Flower (and tornado) not installed
        return

    def on_parsed() -> None:
        if "basic_auth" not in options:  # not Flower's options
            return
        authenticated = bool(options.basic_auth or options.auth)
        options.address = bind_address(options.address or "", authenticated)
        if authenticated:
            protect_metrics()

    options.add_parse_callback(on_parsed)


def protect_metrics() -> None:
    """Flower's `/metrics` behind the same login as its other pages."""
    from flower import urls  # noqa: PLC0415
    from flower.views import monitor  # noqa: PLC0415
    from tornado import web  # noqa: PLC0415

    class AuthenticatedMetrics(monitor.Metrics):  # type: ignore[misc]
        @web.authenticated
        async def get(self) -> None:
            await super().get()

    urls.handlers[:] = [
        _with_handler(spec, AuthenticatedMetrics) if _handler_of(spec) is monitor.Metrics else spec
        for spec in urls.handlers
    ]


def _handler_of(spec: Any) -> Any:
    return spec[1] if isinstance(spec, tuple) else getattr(spec, "handler_class", None)


def _with_handler(spec: Any, handler: type) -> Any:
    if isinstance(spec, tuple):
        return (spec[0], handler, *spec[2:])
    spec.handler_class = handler
    return spec
