"""The status API app: dashboard and stats JSON, `/metrics`, the page, `/livez`.

With API_TOKEN set every data route needs `Authorization: Bearer <token>` or the session
cookie that `POST /auth/signin` sets (worker/api/auth.py), the OpenAPI schema and the docs
included. The webhooks (`worker/api/webhooks.py`) have their own token, WEBHOOK_TOKEN,
and exist only with it. The page shell (`/`, `/static/*`), `/livez` and the `/auth/*`
routes are open: the shell holds no data and asks for the token itself.
"""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Any

import redis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import InterfaceError, OperationalError

from worker.api.auth import bearer_guard
from worker.api.campaigns import campaigns_router
from worker.api.chart_routes import chart_router
from worker.api.control_routes import instance_control_router
from worker.api.controls import controls_router
from worker.api.deps import ApiDeps
from worker.api.message_routes import message_router
from worker.api.metrics import metrics_registry
from worker.api.routes import dashboard_router, stats_router
from worker.api.session import auth_router
from worker.api.webhooks import add_webhook_routes

log = logging.getLogger(__name__)
#: Files of `worker/api/static/` the page may load, with their media types.
STATIC_FILES = {"app.js": "text/javascript", "style.css": "text/css"}


def static_text(name: str) -> str:
    return files("worker.api").joinpath("static", name).read_text(encoding="utf-8")


async def dependency_down(request: Request, exc: Exception) -> JSONResponse:
    """Redis or PostgreSQL unreachable: 503 with a short reason, not a 500."""
    log.warning("status API dependency failed on %s: %s", request.url.path, exc)
    which = "redis" if isinstance(exc, redis.RedisError) else "database"
    return JSONResponse({"detail": f"{which} unavailable"}, status_code=503)


def add_page_routes(app: FastAPI) -> None:
    """`/` (the page shell) and its static files: open, they hold no data."""

    @app.get("/", include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(static_text("index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC_FILES:
            raise HTTPException(404, detail=f"no static file {name!r}")
        return Response(
            static_text(name), media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
        )


def add_schema_routes(app: FastAPI, guard: Any) -> None:
    """The OpenAPI schema and Swagger UI, guarded like every other route."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[guard])
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False, dependencies=[guard])
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} docs")


def create_app(deps: ApiDeps) -> FastAPI:
    """A status API over `deps`; nothing here reads the environment."""
    guard = Depends(bearer_guard(deps.settings))
    app = FastAPI(
        title="zapdispatch status API", version="1", openapi_url=None, docs_url=None, redoc_url=None
    )

    @app.get("/livez", tags=["liveness"], summary="Liveness: the process answers (no auth)")
    def livez() -> dict[str, str]:
        return {"status": "ok"}

    registry = metrics_registry(deps)

    @app.get(
        "/metrics",
        tags=["metrics"],
        summary="Prometheus text format",
        response_class=Response,
        dependencies=[guard],
    )
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    if deps.webhooks is not None and deps.settings.webhook_secret:
        add_webhook_routes(
            app, deps.webhooks, deps.settings.webhook_secret, deps.settings.webhook_max_body_bytes
        )
    app.include_router(dashboard_router(deps), dependencies=[guard])
    app.include_router(stats_router(deps), dependencies=[guard])
    app.include_router(controls_router(deps), dependencies=[guard])
    app.include_router(campaigns_router(deps), dependencies=[guard])
    app.include_router(message_router(deps.message_queries), dependencies=[guard])
    app.include_router(chart_router(deps), dependencies=[guard])
    app.include_router(instance_control_router(deps), dependencies=[guard])
    app.include_router(auth_router(deps.settings))
    add_page_routes(app)
    add_schema_routes(app, guard)
    app.add_exception_handler(redis.RedisError, dependency_down)
    app.add_exception_handler(OperationalError, dependency_down)
    app.add_exception_handler(InterfaceError, dependency_down)
    return app
