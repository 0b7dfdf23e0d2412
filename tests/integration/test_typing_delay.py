"""Typing delay on real PostgreSQL and Redis: every send carries an integer `delay` in range."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.stack import Stack, phone
from worker.delivery import Result


def test_every_send_carries_a_random_integer_delay_in_range(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(typing_delay_ms="1000-3000")
    stack.add_instance("a")
    for i in range(30):
        assert stack.dispatcher.deliver(stack.accept(phone(i))).result is Result.SENT
    delays = [record["delay"] for record in stack.evolution.sent]
    assert all(type(d) is int and 1000 <= d <= 3000 for d in delays), delays
    assert len(set(delays)) > 10  # drawn per send, not once


def test_no_delay_field_when_off(stack: Stack) -> None:
    stack.add_instance("a")
    stack.dispatcher.deliver(stack.accept(phone(1)))
    assert "delay" not in stack.evolution.sent[0]
