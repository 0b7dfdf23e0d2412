"""`GET /instance/connectionState/{instance}` and `GET /instance/fetchInstances`, simulated.

connectionState is live (Evolution's memory): an instance that is not `loaded` answers
without `state`. fetchInstances lists database rows: `connectionStatus` is the instance's
`db_state` when set (Evolution leaves it `open` while a session auto-reconnects), else its
live state. With an instance's own token instead of the global key it lists only the
instances holding that token, and answers 404 if one of them is not loaded.
"""

from __future__ import annotations

import datetime
from typing import Any

from fastapi import APIRouter, Request

from worker.simulator.guards import ContractError, existing, hang, instance_key_holders
from worker.simulator.state import SimInstance, SimulatorState


def add_instance_routes(router: APIRouter, sim: SimulatorState) -> None:
    """Add both routes to `router` (whose dependencies check the licence and the key)."""

    @router.get("/instance/connectionState/{instance}")
    async def connection_state(instance: str, request: Request) -> dict[str, Any]:
        found = existing(sim, instance)
        if found.hang_connection_state:
            await hang(request, sim.config.hang_seconds)
        if not found.loaded:  # Evolution's `waInstances[name]?.connectionStatus?.state`
            return {"instance": {"instanceName": found.name}}
        return {"instance": {"instanceName": found.name, "state": found.state}}

    @router.get("/instance/fetchInstances")
    async def fetch_instances(
        request: Request, instanceName: str | None = None
    ) -> list[dict[str, Any]]:
        chosen = [i for i in _listable(sim, request) if instanceName in (None, i.name)]
        if instanceName is not None or _by_instance_key(sim, request):
            _all_loaded(chosen)
        if any(i.hang_connection_state for i in chosen):
            await hang(request, sim.config.hang_seconds)
        return [instance_record(i) for i in chosen]


def _by_instance_key(sim: SimulatorState, request: Request) -> bool:
    key = sim.config.api_key
    return bool(key) and request.headers.get("apikey") != key


def _listable(sim: SimulatorState, request: Request) -> list[SimInstance]:
    """Every instance for the global key; for an instance's token, those holding it."""
    if _by_instance_key(sim, request):
        return instance_key_holders(sim, request.headers.get("apikey") or "")
    return sim.instances()


def _all_loaded(chosen: list[SimInstance]) -> None:
    """Evolution's `instanceInfo(names)`: 404 when a named instance is not in memory."""
    absent = [i.name for i in chosen if not i.loaded]
    if absent:
        plural = "s" if len(absent) > 1 else ""
        raise ContractError(404, [f'Instance{plural} "{", ".join(absent)}" not found'])


def instance_record(instance: SimInstance) -> dict[str, Any]:
    """One element of fetchInstances (the fields the project reads, plus a few more)."""
    return {
        "id": instance.instance_id,
        "name": instance.name,
        "connectionStatus": instance.db_state or instance.state,
        "ownerJid": f"{instance.number}@s.whatsapp.net",
        "profileName": None,
        "integration": "WHATSAPP-BAILEYS",
        "number": instance.number,
        "token": instance.token,
        "disconnectionReasonCode": instance.disconnection_reason,
        "disconnectionAt": _iso(instance.disconnection_at),
        "createdAt": _iso(instance.created_at),
    }


def _iso(unix_seconds: float | None) -> str | None:
    if unix_seconds is None:
        return None
    moment = datetime.datetime.fromtimestamp(unix_seconds, tz=datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
