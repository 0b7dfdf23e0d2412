"""`GET /messages` (filtered, newest first, keyset-paged), `GET /messages/{id}` and
`GET /messages/{id}/timeline`."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status

from models.enums import MessageState
from models.message_query_store import MAX_PAGE, MessageFilter, MessageQueryStore
from models.message_values import UnknownMessage
from worker.message_json import event_json, message_json

NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _unknown(message_id: uuid.UUID) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no message {message_id}")


def message_router(queries: MessageQueryStore) -> APIRouter:
    router = APIRouter(prefix="/messages", tags=["messages"])

    @router.get("", summary="Messages newest first; filters narrow, `before` pages")
    def list_messages(
        state: MessageState | None = None,
        contact_id: Annotated[str | None, Query(max_length=128, pattern=NO_NUL)] = None,
        campaign: Annotated[str | None, Query(max_length=100, pattern=NO_NUL)] = None,
        instance: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
        before: Annotated[
            uuid.UUID | None, Query(description="The previous page's `next_before`")
        ] = None,
    ) -> dict[str, Any]:
        page = queries.page(
            MessageFilter(state, contact_id, campaign, instance, before=before, limit=limit)
        )
        return {
            "messages": [message_json(m) for m in page.messages],
            "next_before": str(page.next_before) if page.next_before else None,
        }

    @router.get(
        "/{message_id}",
        summary="One message",
        responses={404: {"description": "No message has that id"}},
    )
    def get_message(message_id: uuid.UUID) -> dict[str, Any]:
        try:
            return message_json(queries.get(message_id))
        except UnknownMessage:
            raise _unknown(message_id) from None

    @router.get(
        "/{message_id}/timeline",
        summary="One message's timeline: accepted, waits, attempts, sent, receipts",
        responses={404: {"description": "No message has that id"}},
    )
    def timeline(message_id: uuid.UUID) -> dict[str, Any]:
        try:
            events = queries.timeline(message_id)
        except UnknownMessage:
            raise _unknown(message_id) from None
        return {"id": str(message_id), "events": [event_json(e) for e in events]}

    return router
