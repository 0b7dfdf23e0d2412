"""Campaigns over HTTP: list them with their counts, cancel what one has not sent."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Path, status

from worker.api.deps import ApiDeps
from worker.controls import ControlError, Controls

CAMPAIGN_PATH = Path(min_length=1, max_length=100, description="Campaign label")


def campaigns_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/campaigns", tags=["campaigns"])

    def controls() -> Controls:
        if deps.controls is None:  # pragma: no cover - deps_from_resources always sets it
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="controls off")
        return deps.controls

    @router.get("", summary="Every campaign: messages by state, receipts, paused or not")
    def campaigns() -> dict[str, Any]:
        return {"campaigns": controls().campaigns()}

    @router.post(
        "/{name}/cancel",
        summary="Cancel a campaign: its queued and waiting messages become cancelled",
        responses={422: {"description": "Malformed campaign label"}},
    )
    def cancel(name: str = CAMPAIGN_PATH) -> dict[str, Any]:
        try:
            return controls().cancel_campaign(name)
        except ControlError as exc:
            raise HTTPException(422, detail=str(exc)) from None

    return router
