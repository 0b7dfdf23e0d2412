"""The Evolution API simulator: an ASGI app and a way to serve it.

`create_app(config)` builds a FastAPI app that answers Evolution's contract from in-memory
state (`worker.simulator.state`), plus admin
endpoints under `/_sim/` (`worker.simulator.admin`). `serve(host, port, config)` runs it
with uvicorn in this process. Point `EVOLUTION_API_URL` at it instead of a real server.

Served with httptools and uvloop, without access logs: the throughput benchmark shares
its CPUs with the simulator.
"""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from worker.simulator.admin import admin_router
from worker.simulator.contract import DroppedConnection, contract_router, send_text_route
from worker.simulator.guards import ContractError
from worker.simulator.state import SimulatorConfig, SimulatorState
from worker.simulator.webhooks import WebhookEmitter

GRACEFUL_SHUTDOWN_SECONDS = 2
"""How long shutdown waits for in-flight (possibly hanging) requests."""


class _QuietResets(logging.Filter):
    """Drop uvicorn's traceback for the simulated resets: they are the point, not a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedConnection)


_QUIET_RESETS = _QuietResets()


class _SimulatorApp(FastAPI):
    """FastAPI, except that a sendText request goes straight to its route's endpoint.

    The route is also in the router, so that skipping FastAPI's middleware and routing
    changes nothing but the cost (other methods on that path still get FastAPI's 405).
    """

    def __init__(self, send_text: Route) -> None:
        super().__init__(title="Evolution API simulator", docs_url=None, redoc_url=None)
        self._send_text = send_text

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match, child_scope = self._send_text.matches(scope)  # FULL: http, POST, path
        if match is Match.FULL:
            scope.update(child_scope, app=self)
            await self._send_text.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(config: SimulatorConfig) -> FastAPI:
    """A fresh simulator; its state is at `app.state.sim` (a `SimulatorState`)."""
    sim = SimulatorState(config)
    send_text = send_text_route(sim)
    app = _SimulatorApp(send_text)
    app.state.sim = sim
    emitter = WebhookEmitter(sim)
    sim.webhooks = emitter
    app.add_event_handler("shutdown", emitter.aclose)
    app.include_router(contract_router(sim, send_text))
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
        access_log=False,
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
