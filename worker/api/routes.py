"""JSON routes: the dashboard, the stats endpoint and open alerts.

Plain `def` routes: the stores are synchronous, so FastAPI runs them in its thread pool.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import JSONResponse

from models.instance_store import UnknownInstance
from worker.api.deps import ApiDeps
from worker.api.health_probes import health_json, run_checks
from worker.stats import iso

NAME_PATH = Path(min_length=1, max_length=64, description="Instance name")


def alert_json(alert: Any) -> dict[str, Any]:
    """One open alert as the page shows it."""
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "subject": alert.subject,
        "severity": alert.severity.value,
        "title": alert.title,
        "message": alert.message,
        "opened_at": iso(alert.opened_at),
        "reminders": alert.reminders,
    }


def dashboard_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/dashboard", tags=["dashboard"])

    @router.get("/instances", summary="Overview of every instance with the overall status")
    def instances_overview() -> dict[str, Any]:
        body = deps.stats.overview().to_json()
        body["open_alerts"] = len(deps.alerts.open_alerts())
        return body

    @router.get(
        "/instances/{name}",
        summary="One instance: caps, usage, contacts, circuit",
        responses={404: {"description": "No instance has that name"}},
    )
    def instance_detail(name: str = NAME_PATH) -> dict[str, Any]:
        try:
            if "\x00" in name:  # PostgreSQL text cannot hold NUL: no instance has it
                raise UnknownInstance(name)
            return deps.stats.detail(name)
        except UnknownInstance:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no instance named {name!r}"
            ) from None

    @router.get(
        "/health",
        summary="Aggregated health; HTTP 503 when degraded",
        responses={503: {"description": "At least one check failed"}},
    )
    def health() -> JSONResponse:
        body = health_json(run_checks(deps))
        code = status.HTTP_200_OK if body["status"] == "healthy" else 503
        return JSONResponse(body, status_code=code)

    @router.get("/alerts", summary="Open alerts, oldest first")
    def open_alerts() -> dict[str, Any]:
        return {"alerts": [alert_json(alert) for alert in deps.alerts.open_alerts()]}

    return router


def stats_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/stats", tags=["stats"])

    @router.get("/instances", summary="Usage per instance against its caps")
    def instance_stats() -> dict[str, Any]:
        return deps.stats.overview().to_stats_json()

    return router
