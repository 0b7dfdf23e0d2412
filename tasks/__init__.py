"""Celery tasks and the Python producer interface.

`enqueue_message(phone=..., text=..., contact_id=None, idempotency_key=None, ttl_seconds=None,
campaign=None)`
validates, writes the message row, then publishes `zapdispatch.deliver_message`; it returns
the message id (UUID) and raises ValueError for bad input before anything is queued.
"""

from __future__ import annotations

import uuid

from models.enums import MessageState
from worker import app
from worker.celery_app import DELIVER_MESSAGE
from worker.composition import pipeline


def enqueue_message(
    phone: str,
    text: str,
    contact_id: str | None = None,
    idempotency_key: str | None = None,
    ttl_seconds: int | None = None,
    campaign: str | None = None,
) -> uuid.UUID:
    """Accept a message for delivery; a reused idempotency key returns the first message's id."""
    fields = {
        "phone": phone,
        "text": text,
        "contact_id": contact_id,
        "idempotency_key": idempotency_key,
        "ttl_seconds": ttl_seconds,
        "campaign": campaign,
    }
    accepted = pipeline(app).intake.accept(fields)
    if accepted.created and accepted.state is MessageState.QUEUED:  # not opted out
        app.send_task(DELIVER_MESSAGE, args=[str(accepted.id)])
    return accepted.id


__all__ = ["enqueue_message"]
