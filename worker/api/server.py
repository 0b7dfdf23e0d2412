"""`zapdispatch api`: serve the status API with uvicorn, refusing unsafe binds."""

from __future__ import annotations

import uvicorn

from config import Settings
from worker.api.app import create_app
from worker.api.auth import check_bind
from worker.api.deps import deps_from_resources
from worker.resources import build_resources

GRACEFUL_SHUTDOWN_SECONDS = 5


def serve(settings: Settings, host: str, port: int) -> None:
    """Run until interrupted. Raises `InsecureBind` (before opening anything) when there is
    no API_TOKEN and `host` is not a loopback address."""
    check_bind(settings, host)
    res = build_resources(settings)
    try:
        uvicorn.run(
            create_app(deps_from_resources(res)),
            host=host,
            port=port,
            log_level="info",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    finally:
        res.close()
