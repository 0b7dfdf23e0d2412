"""Flower from our settings: `celery -A worker flower` with basic auth from FLOWER_BASIC_AUTH.

Flower reads its options from `FLOWER_*` environment variables (`FLOWER_BASIC_AUTH` maps to
its `basic_auth` option, see flower/command.py `apply_env_options`) after `-A worker` has
imported the app. A value that only lives in `.env` (read by our settings) is therefore
copied into this process's environment when the app is imported, so Flower sees it too.
A value already in the environment wins.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from config import Settings

FLOWER_BASIC_AUTH = "FLOWER_BASIC_AUTH"


def export_flower_env(settings: Settings, environ: MutableMapping[str, str]) -> bool:
    """Set FLOWER_BASIC_AUTH in `environ` from `settings` if absent; True if it was set."""
    if settings.flower_basic_auth is None or environ.get(FLOWER_BASIC_AUTH):
        return False
    environ[FLOWER_BASIC_AUTH] = settings.flower_basic_auth.get_secret_value()
    return True
