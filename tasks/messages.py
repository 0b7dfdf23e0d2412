"""Message tasks: one-line adapters over `worker.composition`.

Infrastructure outages (PostgreSQL or Redis unreachable) retry with capped backoff for as
long as they last: the task may be the only copy of the message. Bad input never retries:
it is recorded `failed`.
"""

from __future__ import annotations

import redis
from celery import Task
from sqlalchemy.exc import InterfaceError, OperationalError

from config import load_settings
from worker import app
from worker.celery_app import DELIVER_MESSAGE, SEND_MESSAGE
from worker.celery_masking import MaskedRequest
from worker.composition import pipeline
from worker.message_input import message_id_from

#: What can get better by waiting: the database or Redis unreachable. Data errors
#: (`DataError`, `IntegrityError`, ...) are not here: retrying them cannot help.
INFRASTRUCTURE_ERRORS = (
    OperationalError,
    InterfaceError,
    redis.ConnectionError,
    redis.TimeoutError,
)
RETRY = {
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": load_settings().infrastructure_retry_max_seconds,
    "retry_jitter": True,
    "max_retries": None,
}


@app.task(name=SEND_MESSAGE, bind=True, Request=MaskedRequest, **RETRY)
def send_message(self: Task, *args: object, **kwargs: object) -> str:
    """Producer entry point: phone, text, contact_id, idempotency_key, ttl_seconds, campaign."""
    return pipeline(app).send(args, kwargs, task_id=self.request.id).result.value


@app.task(name=DELIVER_MESSAGE, **RETRY)
def deliver_message(message_id: str) -> str:
    """Route and send one recorded message (requeues, sweeps and `enqueue_message`)."""
    return pipeline(app).deliver(message_id_from(message_id)).result.value
