"""State-changing routes the console's controls call: ban and unban an instance.

Each is authenticated like every data route (bearer, or the session cookie plus the CSRF
rule of worker/api/auth.py) and logged with who asked (the client address).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status

from models.instance_store import UnknownInstance
from worker.api.deps import ApiDeps
from worker.api.routes import NAME_PATH
from worker.bans import ban_instance, configured_channels, unban_instance


def _who(request: Request) -> str:
    return f"status API from {request.client.host if request.client else '?'}"


def _unknown(name: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no instance named {name!r}")


def instance_control_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/instances", tags=["controls"])

    @router.post(
        "/{name}/ban",
        summary="Mark an instance banned and move its contacts off it",
        responses={404: {"description": "No instance has that name"}},
    )
    def ban(request: Request, name: str = NAME_PATH) -> dict[str, Any]:
        try:
            if "\x00" in name:  # PostgreSQL text cannot hold NUL: no instance has it
                raise UnknownInstance(name)
            result = ban_instance(deps.instances, name, by=_who(request), now=datetime.now(tz=UTC))
        except UnknownInstance:
            raise _unknown(name) from None
        return {
            "name": result.name,
            "status": "banned",
            "contacts_migrated": result.contacts_migrated,
        }

    @router.post(
        "/{name}/unban",
        summary="Banned → disconnected until seen; its ban alert resolved",
        responses={404: {"description": "No instance has that name"}},
    )
    def unban(request: Request, name: str = NAME_PATH) -> dict[str, Any]:
        try:
            if "\x00" in name:
                raise UnknownInstance(name)
            result = unban_instance(
                deps.instances,
                deps.alerts,
                name,
                by=_who(request),
                now=datetime.now(tz=UTC),
                channels=configured_channels(deps.settings),
            )
        except UnknownInstance:
            raise _unknown(name) from None
        return {
            "name": result.name,
            "status": deps.instances.get(name).status.value,
            "was_banned": result.was_banned,
            "alert_resolved": result.alert_resolved,
        }

    return router
