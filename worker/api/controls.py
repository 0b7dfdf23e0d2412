"""Sending controls over HTTP: pause, resume and the pauses in force.

Behind the same bearer guard as every route. Bodies are JSON: `{"instance": NAME}`,
`{"campaign": C}` or `{}` (all sending); unknown names answer 422 with the reason.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field

from worker.api.deps import ApiDeps
from worker.controls import ControlError, Controls


class ControlBody(BaseModel):
    """What to pause or resume: one instance, one campaign, or (neither) all sending."""

    model_config = ConfigDict(extra="forbid")

    instance: str | None = Field(default=None, min_length=1, max_length=64)
    campaign: str | None = Field(default=None, min_length=1, max_length=100)


def controls_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/controls", tags=["controls"])

    def controls() -> Controls:
        if deps.controls is None:  # pragma: no cover - deps_from_resources always sets it
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="controls off")
        return deps.controls

    def run(action: str, body: ControlBody | None) -> dict[str, Any]:
        body = body or ControlBody()
        try:
            result: dict[str, Any] = getattr(controls(), action)(
                instance=body.instance, campaign=body.campaign
            )
        except ControlError as exc:
            raise HTTPException(422, detail=str(exc)) from None
        return result

    @router.post(
        "/pause",
        summary="Pause all sending, one instance or one campaign (every worker within 2 s)",
        responses={422: {"description": "Unknown instance, or both instance and campaign"}},
    )
    def pause(body: ControlBody | None = None) -> dict[str, Any]:
        return run("pause", body)

    @router.post(
        "/resume",
        summary="Resume what was paused; paused messages are sent on",
        responses={422: {"description": "Unknown instance, or both instance and campaign"}},
    )
    def resume(body: ControlBody | None = None) -> dict[str, Any]:
        return run("resume", body)

    @router.get("/pauses", summary="Pauses in force, with since when")
    def pauses() -> dict[str, Any]:
        return {"pauses": controls().pauses()}

    return router
