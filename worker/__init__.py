"""zapdispatch worker package. `celery -A worker` finds the Celery application as
`worker.app`; it is built on first access, so importing any module of the package (routing,
the limiter, the CLI, the API) loads no Celery and reads no settings."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery_app import app  # noqa: PLC0415 - built on first use, not on import

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
