"""The Celery tasks through Celery's in-process worker (celery.contrib.pytest) on real Redis.

`enqueue_message` records the row before publishing; the worker thread runs the real task
adapters, which use this test's resources (real PostgreSQL and Redis, fake Evolution).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import text

import worker
from models.enums import MessageState
from tasks import enqueue_message
from tests.support.stack import Stack, phone
from worker.resources import install


@pytest.fixture
def live_app(stack: Stack, redis_url: str) -> Iterator[Celery]:
    """`worker.app` on this test's Redis, served by an in-process worker thread."""
    app = worker.app
    saved = {k: app.conf[k] for k in ("broker_url",)}
    app.conf.broker_url = redis_url
    install(stack.res)
    with start_worker(
        app, pool="solo", perform_ping_check=False, loglevel="WARNING", shutdown_timeout=10
    ):
        yield app
    app.conf.update(saved)


def wait_for_state(stack: Stack, message_id: uuid.UUID, state: MessageState) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if stack.res.messages.get(message_id).state is state:
            return
        time.sleep(0.05)
    raise AssertionError(f"message {message_id} is {stack.res.messages.get(message_id).state}")


def test_enqueue_message_writes_the_row_then_the_worker_sends_it(
    stack: Stack, live_app: Celery
) -> None:
    stack.add_instance("a")
    message_id = enqueue_message(phone=phone(1), text="oi", contact_id="doc")
    wait_for_state(stack, message_id, MessageState.SENT)
    assert stack.evolution.by_instance() == {"a": ["5511900010001"]}
    assert (
        enqueue_message(phone=phone(1), text="oi", contact_id="doc", idempotency_key="k")
        != message_id
    )


def test_enqueue_message_raises_before_queueing_bad_input(stack: Stack, live_app: Celery) -> None:
    with pytest.raises(ValueError, match="text is empty"):
        enqueue_message(phone=phone(1), text="  ")
    with pytest.raises(ValueError, match="not a valid number"):
        enqueue_message(phone="123", text="oi")
    assert stack.res.messages.count_by_state() == {}


def test_send_task_by_name_with_bad_input_is_recorded_failed(
    stack: Stack, live_app: Celery
) -> None:
    stack.add_instance("a")
    bad: list[dict[str, Any]] = [
        {"phone": phone(1)},
        {"phone": phone(1), "text": "x" * 4097},
        {"phone": phone(1), "text": "oi", "contact_id": 12},
        {"phone": phone(1), "text": "oi", "color": "blue"},
    ]
    for kwargs in bad:
        live_app.send_task("zapdispatch.send_message", kwargs=kwargs)
    live_app.send_task("zapdispatch.send_message", kwargs={"phone": phone(2), "text": "ok"})
    deadline = time.monotonic() + 20
    while stack.res.messages.count_by_state() != {"failed": 4, "sent": 1}:
        assert time.monotonic() < deadline, stack.res.messages.count_by_state()
        time.sleep(0.05)


def test_an_argument_given_by_position_and_by_keyword_is_recorded_failed(
    stack: Stack, live_app: Celery
) -> None:
    stack.add_instance("a")
    live_app.send_task(
        "zapdispatch.send_message", args=[phone(1), "by position"], kwargs={"phone": phone(2)}
    )
    live_app.send_task(
        "zapdispatch.send_message", args=[phone(3)], kwargs={"phone": phone(3), "text": "oi"}
    )
    deadline = time.monotonic() + 20
    while stack.res.messages.count_by_state() != {"failed": 2}:
        assert time.monotonic() < deadline, stack.res.messages.count_by_state()
        time.sleep(0.05)
    with stack.res.sessions() as session:
        reasons = session.execute(text("SELECT last_error FROM messages")).scalars().all()
    assert sorted(reasons) == ["argument(s) given both by position and by keyword: phone"] * 2
    assert stack.evolution.by_instance() == {}
