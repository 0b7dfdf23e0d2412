"""Admin endpoints under `/_sim/`: configure the simulator, read what it received.

No api key is needed for them. Bodies are partial JSON: only the fields sent change.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from worker.simulator.state import ConnectionStatus, FailureMode, SimulatorState


class InstancePatch(BaseModel):
    """Per-instance knobs; `latency_ms`/`failure_*` null means "use the global value"."""

    model_config = ConfigDict(extra="forbid")

    state: ConnectionStatus | None = None
    disconnection_reason: int | None = None
    number: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    failure_rate: float | None = Field(default=None, ge=0, le=1)
    failure_mode: FailureMode | None = None
    hang_connection_state: bool | None = None
    never_delivers: bool | None = None
    loaded: bool | None = None
    db_state: ConnectionStatus | None = None
    token: str | None = None


class ConfigPatch(BaseModel):
    """Global knobs (milliseconds, seconds, a rate in 0..1)."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float | None = Field(default=None, ge=0)
    not_on_whatsapp: list[str] | None = None
    failure_rate: float | None = Field(default=None, ge=0, le=1)
    failure_mode: FailureMode | None = None
    retry_after_seconds: float | None = Field(default=None, ge=0)
    hang_seconds: float | None = Field(default=None, ge=0)
    api_key: str | None = None
    keep_messages: bool | None = None
    find_messages_route: bool | None = None
    receipt_delays_ms: list[float] | None = None
    webhook_url: str | None = None
    webhook_headers: dict[str, str] | None = None
    license_required: bool | None = None


class InboundText(BaseModel):
    """A scripted reply: `number` (digits) writes `text` to the instance."""

    model_config = ConfigDict(extra="forbid")

    number: str = Field(pattern=r"^\d{8,15}$")
    text: str


_NOT_NULLABLE_INSTANCE_FIELDS = frozenset(
    {"state", "number", "hang_connection_state", "never_delivers", "loaded"}
)


def admin_router(sim: SimulatorState) -> APIRouter:
    router = APIRouter(prefix="/_sim")

    @router.get("/messages")
    async def messages(instance: str | None = None) -> list[dict[str, Any]]:
        return [message.to_json() for message in sim.messages(instance)]

    @router.get("/delays")
    async def delays() -> dict[str, int]:
        """The `delay` (ms) of the last sendText to each number (0: none)."""
        return dict(sim.delays)

    @router.delete("/messages", status_code=204)
    async def reset_messages() -> Response:
        sim.reset_messages()
        return Response(status_code=204)

    @router.get("/instances")
    async def instances() -> list[dict[str, Any]]:
        return [instance.to_json() for instance in sim.instances()]

    @router.put("/instances/{name}")
    async def put_instance(name: str, patch: InstancePatch) -> dict[str, Any]:
        return sim.upsert_instance(name, _instance_changes(patch)).to_json()

    @router.delete("/instances/{name}", status_code=204)
    async def delete_instance(name: str) -> Response:
        if not sim.delete_instance(name):
            raise HTTPException(404, f"no instance {name!r}")
        return Response(status_code=204)

    @router.post("/inbound/{name}")
    async def inbound(name: str, message: InboundText) -> dict[str, Any]:
        found = sim.instance(name)
        if found is None or sim.webhooks is None:
            raise HTTPException(404, f"no instance {name!r}")
        return {"id": sim.webhooks.inbound(found, message.number, message.text)}

    @router.get("/webhooks")
    async def webhooks() -> list[dict[str, Any]]:
        return sim.webhooks.attempts() if sim.webhooks is not None else []

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        return sim.stats()

    @router.get("/config")
    async def get_config() -> dict[str, Any]:
        return _public_config(sim)

    @router.put("/config")
    async def put_config(patch: ConfigPatch) -> dict[str, Any]:
        changes = patch.model_dump(exclude_unset=True)
        nullable = ("api_key", "webhook_url")
        sim.update_config({k: v for k, v in changes.items() if v is not None or k in nullable})
        return _public_config(sim)

    return router


def _instance_changes(patch: InstancePatch) -> dict[str, Any]:
    """The fields the client sent; an explicit null resets a nullable knob."""
    changes = patch.model_dump(exclude_unset=True)
    return {
        key: value
        for key, value in changes.items()
        if value is not None or key not in _NOT_NULLABLE_INSTANCE_FIELDS
    }


def _public_config(sim: SimulatorState) -> dict[str, Any]:
    config = sim.config
    return {
        "latency_ms": config.latency_ms,
        "not_on_whatsapp": list(config.not_on_whatsapp),
        "failure_rate": config.failure_rate,
        "failure_mode": config.failure_mode,
        "retry_after_seconds": config.retry_after_seconds,
        "hang_seconds": config.hang_seconds,
        "api_key_set": config.api_key is not None,
        "keep_messages": config.keep_messages,
        "find_messages_route": config.find_messages_route,
        "receipt_delays_ms": list(config.receipt_delays_ms),
        "webhook_url": config.webhook_url,
        "license_required": config.license_required,
    }
