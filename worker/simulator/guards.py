"""What Evolution checks before a route runs, simulated: its error envelope, the licence
gate, the instance-exists guard and the api key guard.

Order, as in the real server: the licence gate (Evolution 2.4: a middleware in front of
every business route, 503 `LICENSE_REQUIRED`), then on a route about one instance that it
exists (404), then the api key (401). The key is the global one, or an instance's own token:
that token opens its own instance's routes and `fetchInstances` (which then lists only the
instances holding it).
"""

from __future__ import annotations

import asyncio
import http
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from worker.simulator.state import SimInstance, SimulatorState

_POLL_SECONDS = 0.05

#: Where the licence gate's answer sends the reader (as Evolution 2.4.0-rc2 names it).
LICENCE_DOCS_URL = "https://docs.evolutionfoundation.com.br/licensing"


class ContractError(Exception):
    """An answer in the contract's error shape: `{"status", "error", "response"}`."""

    def __init__(self, status: int, message: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def to_response(self) -> JSONResponse:
        body = {
            "status": self.status,
            "error": http.HTTPStatus(self.status).phrase,
            "response": {"message": self.message},
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


class LicenceGate(ContractError):
    """The licence gate's 503: its own body, not the error envelope."""

    def __init__(self, request: Request, instance_id: str) -> None:
        super().__init__(503, "service not activated")
        scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
        self.register_url = f"{scheme}://{request.headers.get('host', '')}/manager/login"
        self.instance_id = instance_id

    def to_response(self) -> JSONResponse:
        body = {
            "error": "service not activated",
            "code": "LICENSE_REQUIRED",
            "register_url": self.register_url,
            "instance_id": self.instance_id,
            "docs_url": LICENCE_DOCS_URL,
            "message": "This Evolution API instance is not activated. Open "
            f"{self.register_url} to activate, or set AUTHENTICATION_API_KEY in your .env "
            f"with a valid licensing key. Docs: {LICENCE_DOCS_URL}",
        }
        return JSONResponse(body, status_code=503)


def check_licence(sim: SimulatorState, request: Request) -> None:
    """503 `LICENSE_REQUIRED` on every route while the `license_required` mode is on."""
    if sim.config.license_required:
        raise LicenceGate(request, sim.server_id)


def check_api_key(sim: SimulatorState, request: Request) -> None:
    """401 unless the `apikey` header is the global key (when one is set) or the token of
    the route's instance (fetchInstances: of any instance). On a route about one instance,
    Evolution's guards check that it exists first: 404 before 401."""
    expected = sim.config.api_key
    given = request.headers.get("apikey")
    if not expected or given == expected:
        return
    instance = request.path_params.get("instance")
    if isinstance(instance, str):
        if existing(sim, instance).token == given and given:
            return
    elif given and instance_key_holders(sim, given):
        return  # fetchInstances with an instance's own token
    raise ContractError(401, "Unauthorized")


def instance_key_holders(sim: SimulatorState, key: str) -> list[SimInstance]:
    """The instances whose own token is `key`."""
    return [i for i in sim.instances() if i.token is not None and i.token == key]


def existing(sim: SimulatorState, name: str) -> SimInstance:
    """The instance, or Evolution's 404 for an instance it does not have."""
    found = sim.instance(name)
    if found is None:
        raise ContractError(404, [f'The "{name}" instance does not exist'])
    return found


async def hang(request: Request, seconds: float) -> None:
    """Wait up to `seconds`, returning early once the client has gone away (the simulated
    slowness any route may have)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not await request.is_disconnected():
        await asyncio.sleep(_POLL_SECONDS)
