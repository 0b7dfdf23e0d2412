"""`POST /webhooks/evolution` (and `/webhooks/evolution/{suffix}`, Evolution's `byEvents`).

Guard order: off (404: the routes exist only with WEBHOOK_TOKEN) → token (401) → body size
(413, from Content-Length or while reading) → body (400 not JSON, 422 not an envelope) →
handled or ignored (200). PostgreSQL or Redis down: 503 (the app's handlers), which
Evolution retries; it does not retry 400/401/403/404/422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from worker.webhooks.auth import authorized
from worker.webhooks.errors import BodyNotJson, MalformedWebhook
from worker.webhooks.events import parse_body
from worker.webhooks.service import WebhookService

PATHS = ("/webhooks/evolution", "/webhooks/evolution/{suffix}")


class BodyTooLarge(Exception):
    """The body exceeds WEBHOOK_MAX_BODY_BYTES."""


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or BodyTooLarge as soon as it passes `limit` bytes (declared or read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def add_webhook_routes(app: FastAPI, service: WebhookService, secret: str, max_bytes: int) -> None:
    async def receive(request: Request) -> JSONResponse:
        if not authorized(request.headers.get("authorization"), secret):
            return _error(401, "missing or invalid webhook token", **{"WWW-Authenticate": "Bearer"})
        try:
            raw = await read_limited(request, max_bytes)
        except BodyTooLarge:
            return _error(413, f"body larger than {max_bytes} bytes")
        try:
            envelope = parse_body(raw)
        except MalformedWebhook as exc:
            return _error(400 if isinstance(exc, BodyNotJson) else 422, str(exc))
        try:
            outcome = await run_in_threadpool(service.handle, envelope)
        except MalformedWebhook as exc:
            return _error(422, str(exc))
        body: dict[str, Any] = {"status": "ok", "outcome": outcome.value}
        return JSONResponse(body)

    for path in PATHS:
        app.add_api_route(
            path,
            receive,
            methods=["POST"],
            tags=["webhooks"],
            summary="Evolution webhook (bearer WEBHOOK_TOKEN or an HS256 JWT signed with it)",
            response_class=JSONResponse,
        )
