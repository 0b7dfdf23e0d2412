"""Campaigns on real PostgreSQL and Redis: the producer keyword is stored on every path."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from models.tables import Message
from tests.integration.conftest import Stack, phone
from worker.pipeline import Pipeline


def stored_campaign(stack: Stack, message_id: uuid.UUID) -> str | None:
    with stack.res.sessions() as s:
        return s.scalar(select(Message.campaign).where(Message.id == message_id))


def test_campaign_is_stored_when_accepted_queued(stack: Stack) -> None:
    message_id = stack.accept(phone(1), campaign="november")
    assert stored_campaign(stack, message_id) == "november"
    assert stack.res.messages.get(message_id).campaign == "november"
    assert stack.res.messages.routing_input(message_id).message.campaign == "november"


def test_campaign_is_stored_when_recorded_already_claimed(stack: Stack) -> None:
    stack.add_instance("a")
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper)
    for i in range(3):  # the first teaches the sticky cache; later ones take the fast path
        pipe.send((), {"phone": phone(1), "text": f"m{i}", "campaign": "nov"}, task_id=f"t{i}")
    with stack.res.sessions() as s:
        rows = s.execute(select(Message.state, Message.campaign)).all()
    assert sorted(rows) == [("sent", "nov")] * 3


def test_bad_campaign_through_the_task_is_recorded_failed_with_the_reason(stack: Stack) -> None:
    stack.add_instance("a")
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper)
    pipe.send((), {"phone": phone(1), "text": "oi", "campaign": "x" * 101}, task_id="t1")
    with stack.res.sessions() as s:
        row = s.execute(select(Message.state, Message.last_error)).one()
    assert row.state == "failed" and "campaign must have 1..100 characters" in row.last_error
    assert stack.evolution.sent == []
