"""The Evolution API simulator: an ASGI app and a way to serve it.

`create_app(config)` builds a FastAPI app that answers the contract of
shared/evolution-api.md from in-memory state (`worker.simulator.state`), plus admin
endpoints under `/_sim/` (`worker.simulator.admin`). `serve(host, port, config)` runs it
with uvicorn in this process. Point `EVOLUTION_API_URL` at it instead of a real server.
"""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from worker.simulator.admin import admin_router
from worker.simulator.contract import ContractError, DroppedConnection, contract_router
from worker.simulator.state import SimulatorConfig, SimulatorState

GRACEFUL_SHUTDOWN_SECONDS = 2
"""How long shutdown waits for in-flight (possibly hanging) requests."""


class _QuietResets(logging.Filter):
    """Drop uvicorn's traceback for the simulated resets: they are the point, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


_QUIET_RESETS = _QuietResets()


def create_app(config: SimulatorConfig) -> FastAPI:
    """A fresh simulator; its state is at `app.state.sim` (a `SimulatorState`)."""
    sim = SimulatorState(config)
    app = FastAPI(title="Evolution API simulator", docs_url=None, redoc_url=None)
    app.state.sim = sim
    app.include_router(contract_router(sim))
    app.include_router(admin_router(sim))
    app.add_exception_handler(ContractError, _contract_error_response)
    logging.getLogger("uvicorn.error").addFilter(_QUIET_RESETS)
    return app


async def _contract_error_response(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ContractError)
    return exc.to_response()


def serve(host: str, port: int, config: SimulatorConfig) -> None:
    """Run the simulator until interrupted (one process, log level warning)."""
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
