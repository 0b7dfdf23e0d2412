"""Fallback and caps on real PostgreSQL and Redis: every row of the fallback table, caps,
counter resets at the hour and day boundaries in TIMEZONE, parking and wake-ups."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from models.enums import InstanceStatus
from models.tables import Contact
from models.views import to_datetime
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker.delivery import Result
from worker.limiter import Candidate


def preferred(stack: Stack, contact_id: str) -> str | None:
    with stack.res.sessions() as s:
        return s.scalar(select(Contact.preferred_instance).where(Contact.id == contact_id))


def send(stack: Stack, contact: str, i: int = 1) -> Result:
    message_id = stack.accept(phone(i), f"to {contact} #{i}", contact_id=contact)
    return stack.dispatcher.deliver(message_id).result


def sticky(stack: Stack, contact: str, instance: str) -> None:
    """Make `instance` the contact's preferred number, as an earlier send would have."""
    with stack.res.sessions.begin() as s:
        s.merge(Contact(id=contact, phone="5511900000099", preferred_instance=instance))


# -- the fallback table ------------------------------------------------------------------
def test_preferred_offline_uses_the_next_available(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    sticky(stack, "doc", "a")
    stack.res.instances.set_status("a", InstanceStatus.DISCONNECTED, None, to_datetime(T0))
    caplog.set_level("INFO", logger="zapdispatch")
    assert send(stack, "doc") is Result.SENT
    assert preferred(stack, "doc") == "b"
    assert "fallback: contact doc moved from a to b (preferred_unavailable)" in caplog.text


def test_preferred_over_its_cap_uses_another_and_saves_it(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.add_instance("a", hourly=1)
    stack.add_instance("b")
    sticky(stack, "doc", "a")
    caplog.set_level("INFO", logger="zapdispatch")
    assert send(stack, "doc", 1) is Result.SENT and preferred(stack, "doc") == "a"
    assert send(stack, "doc", 2) is Result.SENT and preferred(stack, "doc") == "b"
    assert "moved from a to b (preferred over its cap)" in caplog.text


def test_banned_instance_migrates_every_contact_and_they_are_reassigned(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    for contact in ("d1", "d2", "d3"):
        sticky(stack, contact, "a")
    migrated = stack.res.instances.ban("a", "banned by WhatsApp", to_datetime(T0))
    assert migrated == 3
    assert {preferred(stack, c) for c in ("d1", "d2", "d3")} == {None}
    assert send(stack, "d1") is Result.SENT and preferred(stack, "d1") == "b"
    assert stack.res.instances.get("a").status is InstanceStatus.BANNED


def test_inactive_instances_are_never_chosen(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    stack.res.instances.update("a", active=False)
    for i in range(5):
        send(stack, f"d{i}", i)
    assert set(stack.evolution.by_instance()) == {"b"}


def test_all_offline_requeues_and_nothing_is_lost(stack: Stack) -> None:
    stack.add_instance("a", status=InstanceStatus.DISCONNECTED)
    assert send(stack, "doc") is Result.REQUEUED
    assert stack.res.messages.count_by_state() == {"queued": 1}


def test_sticky_patience_waits_for_the_preferred_before_falling_back(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(sticky_patience_seconds=120)
    stack.add_instance("a", hourly=1)
    stack.add_instance("b")
    sticky(stack, "doc", "a")
    assert send(stack, "doc", 1) is Result.SENT
    message_id = stack.accept(phone(2), "second", contact_id="doc")
    waiting = stack.dispatcher.deliver(message_id)
    assert waiting.result is Result.REQUEUED and waiting.countdown_seconds == 120
    stack.set_clock(T0 + 121)
    assert stack.dispatcher.deliver(message_id).result is Result.SENT
    assert preferred(stack, "doc") == "b"


# -- caps and windows ----------------------------------------------------------------------
def usage(stack: Stack, name: str) -> tuple[int, int]:
    row = stack.res.limiter.usage([Candidate(name, 1, 1)])[0]
    return row.sent_hour, row.sent_day


def test_instance_without_capacity_is_not_chosen_and_counters_are_separate(stack: Stack) -> None:
    stack.add_instance("a", hourly=2)
    stack.add_instance("b", hourly=3)
    results = [send(stack, f"d{i}", i) for i in range(6)]
    assert results.count(Result.SENT) == 5 and results[-1] is Result.PARKED
    assert usage(stack, "a") == (2, 2) and usage(stack, "b") == (3, 3)


def test_hourly_counter_resets_at_the_local_hour(stack: Stack) -> None:
    stack.add_instance("a", hourly=1)
    assert send(stack, "d1", 1) is Result.SENT
    assert send(stack, "d2", 2) is Result.PARKED
    stack.set_clock(T0 + 3600)  # 11:00 in São Paulo
    assert usage(stack, "a") == (0, 1)
    assert send(stack, "d3", 3) is Result.SENT


def test_daily_counter_resets_at_local_midnight_not_utc(stack: Stack) -> None:
    stack.add_instance("a", hourly=100, daily=1)
    midnight_utc = datetime(2026, 11, 24, 0, 0, tzinfo=UTC).timestamp()  # 21:00 local
    stack.set_clock(midnight_utc - 60)
    assert send(stack, "d1", 1) is Result.SENT
    stack.set_clock(midnight_utc + 60)  # a new UTC day, same local day
    assert usage(stack, "a") == (0, 1)
    assert send(stack, "d2", 2) is Result.PARKED
    local_midnight = datetime(2026, 11, 24, 3, 0, tzinfo=UTC).timestamp()
    stack.set_clock(local_midnight + 1)
    assert usage(stack, "a") == (0, 0)
    assert send(stack, "d3", 3) is Result.SENT


def test_a_number_that_just_failed_takes_new_contacts_only_when_the_others_are_full(
    stack: Stack,
) -> None:
    """It handed its slots back, so it looks least loaded; its breaker is not open yet."""
    stack.add_instance("a", hourly=3)
    stack.add_instance("b")
    threshold = stack.res.settings.circuit_failure_threshold
    stack.res.instances.record_send_failure("b", to_datetime(T0), threshold=threshold)
    assert [send(stack, f"d{i}", i) for i in range(4)] == [Result.SENT] * 4
    assert [preferred(stack, f"d{i}") for i in range(4)] == ["a", "a", "a", "b"]
    assert stack.res.instances.get("b").consecutive_failures == 0  # its send succeeded


def test_parked_messages_are_spread_over_the_windows_that_can_send_them(stack: Stack) -> None:
    stack.add_instance("a", hourly=2)
    ids = [stack.accept(phone(i), f"m{i}", contact_id=f"d{i}") for i in range(7)]
    for message_id in ids:
        stack.dispatcher.deliver(message_id)
    waits = sorted(stack.res.messages.get(i).not_before or to_datetime(0) for i in ids[2:])
    hour = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    assert [w.hour for w in waits] == [14, 14, 15, 15, 16]
    assert waits[0] == hour


def test_the_sweep_wakes_parked_messages_when_their_time_comes(stack: Stack) -> None:
    stack.add_instance("a", hourly=1)
    first, second = (stack.accept(phone(i), f"m{i}", contact_id=f"d{i}") for i in range(2))
    stack.dispatcher.deliver(first)
    stack.dispatcher.deliver(second)
    stack.sweeper.run()  # first run after a flush re-drives queued ones; nothing is due yet
    stack.scheduler.calls.clear()
    assert stack.sweeper.run().woken == 0
    stack.set_clock(T0 + 3600)
    assert stack.sweeper.run().woken == 1
    assert stack.scheduler.calls == [(second, 0.0)]
    assert stack.dispatcher.deliver(second).result is Result.SENT
    message = stack.res.messages.get(second)
    assert message.requeues == 1 and message.attempts == 1


def test_requeues_do_not_use_up_the_retry_budget(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(max_send_attempts=1)
    stack.add_instance("a", status=InstanceStatus.DISCONNECTED)
    message_id = stack.accept(phone(1), "x")
    for _ in range(5):
        stack.dispatcher.deliver(message_id)
    stack.res.instances.set_status("a", InstanceStatus.CONNECTED, None, to_datetime(T0))
    assert stack.dispatcher.deliver(message_id).result is Result.SENT
    assert stack.res.messages.get(message_id).requeues == 5
