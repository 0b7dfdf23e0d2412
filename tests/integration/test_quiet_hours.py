"""Quiet hours on real PostgreSQL and Redis: a São Paulo recipient at 23:00 local waits for
its morning, a recipient whose local time is outside the window is sent at once."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from models.enums import MessageState
from models.tables import Message
from tests.support.evolution import T0
from tests.support.stack import Stack
from worker.composition import Pipeline
from worker.countdowns import CountdownBook
from worker.delivery import Result
from worker.policy.quiet_hours import QUIET_WAKE_SPREAD_SECONDS

HOUR = 3600.0
SAO_PAULO = "+55 11 99999-8888"
LOS_ANGELES = "+1 415 555 0100"  # 18:00 when São Paulo is at 23:00


def test_recipient_in_its_night_waits_for_the_window_end(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(quiet_hours="22:00-08:00")
    stack.add_instance("a")
    stack.set_clock(T0 + 13 * HOUR)  # 23:00 in São Paulo
    night = stack.accept(SAO_PAULO)
    evening = stack.accept(LOS_ANGELES)
    parked = stack.dispatcher.deliver(night)
    assert parked.result is Result.PARKED and parked.detail == "quiet hours"
    assert stack.dispatcher.deliver(evening).result is Result.SENT
    with stack.res.sessions() as s:
        row = s.execute(select(Message).where(Message.id == night)).scalar_one()
        assert row.state is MessageState.WAITING and row.wait_reason == "quiet_hours"
        assert row.attempts == 0 and row.requeues == 0
        window_end = T0 + 22 * HOUR  # 08:00 the next morning
        assert window_end <= row.not_before.timestamp() <= window_end + QUIET_WAKE_SPREAD_SECONDS
    assert stack.res.messages.count_by_state() == {"waiting": 1, "sent": 1}
    assert [r["number"] for r in stack.evolution.sent] == ["14155550100"]

    stack.set_clock(T0 + 21 * HOUR)  # 07:00: still night, nothing due
    assert stack.sweeper.run().woken == 0
    stack.set_clock(T0 + 22 * HOUR + QUIET_WAKE_SPREAD_SECONDS)
    assert stack.sweeper.run().woken == 1
    assert stack.dispatcher.deliver(night).result is Result.SENT


def test_a_new_message_through_the_task_is_parked_without_a_slot(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(quiet_hours="22:00-08:00")
    stack.add_instance("a", hourly=1)
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper, CountdownBook(stack.redis))
    stack.set_clock(T0 + 13 * HOUR)
    for i in range(3):
        assert pipe.send((), {"phone": SAO_PAULO, "text": f"m{i}"}, task_id=f"t{i}").result is (
            Result.PARKED
        )
    assert pipe.send((), {"phone": LOS_ANGELES, "text": "x"}, task_id="t9").result is Result.SENT


def test_quiet_hours_off_sends_at_night(stack: Stack) -> None:
    stack.add_instance("a")
    stack.set_clock(T0 + 13 * HOUR)
    assert stack.dispatcher.deliver(stack.accept(SAO_PAULO)).result is Result.SENT
