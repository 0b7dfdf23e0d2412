"""Delivery on real PostgreSQL and Redis: sticky routing, fallback, errors, the send guard."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import event, select, update

from models.enums import InstanceStatus, MessageState
from models.message_store import IdempotencyConflict
from models.tables import Contact, Message
from models.views import to_datetime
from tests.concurrency import run_on_threads
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker.composition import Pipeline
from worker.countdowns import CountdownBook
from worker.delivery import Dispatcher, Result
from worker.limiter import Candidate
from worker.message_input import InvalidMessage
from worker.sticky_cache import StickyCache


def preferred(stack: Stack, contact_id: str) -> str | None:
    with stack.res.sessions() as s:
        return s.scalar(select(Contact.preferred_instance).where(Contact.id == contact_id))


def deliver_new(stack: Stack, i: int, **fields: object) -> uuid.UUID:
    message_id = stack.accept(phone(i), f"message {i}", **fields)
    stack.dispatcher.deliver(message_id)
    return message_id


def respond(status: int, body: object | None = None, **kw: object) -> Callable[..., httpx.Response]:
    return lambda request: httpx.Response(status, json=body or {}, **kw)  # type: ignore[arg-type]


def evolution_error(status: int) -> Callable[..., httpx.Response]:
    """An error Evolution answered in its own envelope: it refused before sending."""
    body = {"status": status, "error": "Internal Server Error", "response": {"message": "x"}}
    return respond(status, body)


def raise_(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


# -- sticky --------------------------------------------------------------------------
def test_new_contact_gets_least_loaded_instance_and_keeps_it(stack: Stack) -> None:
    for name in ("a", "b", "c"):
        stack.add_instance(name)
    stack.res.limiter.reserve([Candidate("a", 100, 1000)], phone="x")  # a carries load
    message_id = deliver_new(stack, 1, contact_id="doctor-1")
    first = stack.res.messages.get(message_id)
    assert first.state is MessageState.SENT and first.instance in {"b", "c"}
    assert preferred(stack, "doctor-1") == first.instance
    assert first.provider_message_id and first.provider_message_id.startswith("3EB0")
    assert first.attempts == 1 and first.sent_at is not None
    for _ in range(3):
        again = stack.res.messages.get(deliver_new(stack, 1, contact_id="doctor-1"))
        assert again.instance == first.instance


def test_ten_new_contacts_spread_over_three_equal_instances(stack: Stack) -> None:
    for name in ("a", "b", "c"):
        stack.add_instance(name)
    for contact in range(10):
        for _ in range(3):
            deliver_new(stack, contact, contact_id=f"doctor-{contact}")
    per_instance = stack.evolution.by_instance()
    contacts_per_instance = {k: len(set(v)) for k, v in per_instance.items()}
    assert sum(contacts_per_instance.values()) == 10
    assert max(contacts_per_instance.values()) <= 4
    for contact in range(10):
        numbers = {r["instance"] for r in stack.evolution.sent if r["text"] == f"message {contact}"}
        assert len(numbers) == 1


def test_every_send_logs_instance_and_masked_contact(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    stack.add_instance("a")
    caplog.set_level("INFO", logger="zapdispatch")
    deliver_new(stack, 1, contact_id="5511900010001")
    text = caplog.text
    assert "via a" in text and "5511*******01" in text and "5511900010001" not in text


# -- the send guard ----------------------------------------------------------------------
def test_redelivered_task_of_a_sent_message_sends_nothing(stack: Stack) -> None:
    stack.add_instance("a")
    message_id = deliver_new(stack, 1)
    assert stack.dispatcher.deliver(message_id).result is Result.SKIPPED
    assert len(stack.evolution.sent) == 1


def test_two_workers_delivering_one_message_send_it_once(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    ids = [stack.accept(phone(i)) for i in range(20)]
    results: list[Result] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        barrier.wait()
        results.extend(stack.dispatcher.deliver(i).result for i in ids)

    run_on_threads(worker, [()] * 2)
    assert len(stack.evolution.sent) == 20
    assert Counter(results)[Result.SENT] == 20
    usage = {
        u.name: u.sent_hour
        for u in stack.res.limiter.usage([Candidate("a", 100, 1000), Candidate("b", 100, 1000)])
    }
    assert sum(usage.values()) == 20  # the loser of each race gave its slot back


# -- error classes -----------------------------------------------------------------------
def test_recipient_not_on_whatsapp_fails_permanently_and_frees_the_slot(stack: Stack) -> None:
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = respond(
        400,
        {
            "status": 400,
            "error": "Bad Request",
            "response": {"message": [{"jid": "x", "exists": False, "number": "x"}]},
        },
    )
    message = stack.res.messages.get(deliver_new(stack, 1))
    assert message.state is MessageState.FAILED
    assert message.last_error and "WhatsApp" in message.last_error
    assert stack.scheduler.calls == []
    assert stack.res.limiter.usage([Candidate("a", 100, 1000)])[0].sent_hour == 0
    assert stack.res.instances.get("a").consecutive_failures == 0


@pytest.mark.parametrize(
    "failure",
    [
        evolution_error(500),
        respond(429, {}),
        raise_(httpx.ConnectTimeout("slow")),
        raise_(httpx.ConnectError("refused")),
        raise_(httpx.WriteError("reset while writing")),
    ],
    ids=["5xx", "429", "connect-timeout", "connection-error", "write-error"],
)
def test_transient_errors_retry_with_backoff(
    stack: Stack, failure: Callable[..., httpx.Response]
) -> None:
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = failure
    message_id = deliver_new(stack, 1)
    message = stack.res.messages.get(message_id)
    assert message.state is MessageState.QUEUED and message.attempts == 1
    assert stack.scheduler.calls == [(message_id, 5.0)]
    assert stack.res.limiter.usage([Candidate("a", 100, 1000)])[0].sent_hour == 0
    assert stack.res.instances.get("a").consecutive_failures == 1
    stack.dispatcher.deliver(message_id)
    assert stack.scheduler.calls[-1] == (message_id, 10.0)


def test_rate_limited_instance_is_not_asked_again_before_its_retry_after(stack: Stack) -> None:
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = respond(429, {}, headers={"Retry-After": "42"})
    message_id = deliver_new(stack, 1)
    assert stack.scheduler.calls == [(message_id, 42.0)]


def test_transient_failures_move_the_message_to_another_instance(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    message_id = stack.accept(phone(1), contact_id="doc")
    with stack.res.sessions.begin() as s:
        s.add(Contact(id="other", phone="5511900000001", preferred_instance="a"))
    with stack.res.sessions.begin() as s:
        s.execute(update(Contact).where(Contact.id == "doc").values(preferred_instance="a"))
    stack.evolution.behaviour["a"] = evolution_error(500)
    stack.dispatcher.deliver(message_id)
    stack.dispatcher.deliver(message_id)
    assert stack.dispatcher.deliver(message_id).result is Result.SENT
    assert stack.res.messages.get(message_id).instance == "b"


def test_gives_up_after_the_attempt_budget(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(max_send_attempts=2)
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = evolution_error(503)
    message_id = deliver_new(stack, 1)
    stack.dispatcher.deliver(message_id)
    message = stack.res.messages.get(message_id)
    assert message.state is MessageState.FAILED and "gave up after 2 attempts" in (
        message.last_error or ""
    )


def test_auth_errors_are_not_the_recipients_fault(stack: Stack) -> None:
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = respond(401, {"status": 401, "error": "Unauthorized"})
    message = stack.res.messages.get(deliver_new(stack, 1))
    assert message.state is MessageState.QUEUED


def test_the_licence_gate_parks_the_message_and_opens_no_breaker(
    make_stack: Callable[..., Stack],
) -> None:
    """Evolution 2.4 not activated (503 LICENSE_REQUIRED on every route): no number is at
    fault and no message fails for it, however often it is tried; it waits, parked for the
    offline backoff, and goes out once the gate is lifted."""
    stack = make_stack(max_send_attempts=2, circuit_failure_threshold=2)
    gate = respond(503, {"error": "service not activated", "code": "LICENSE_REQUIRED"})
    for name in ("a", "b"):
        stack.add_instance(name)
        stack.evolution.behaviour[name] = gate
    message_id = deliver_new(stack, 1)
    for tries in range(1, 5):
        message = stack.res.messages.get(message_id)
        assert message.state is MessageState.WAITING and message.requeues == tries
        assert message.attempts == 0  # no attempt used up: MAX_SEND_ATTEMPTS is 2
        assert "Evolution requires a licence" in (message.last_error or "")
        assert message.not_before is not None and message.not_before > to_datetime(T0)
        stack.sweeper.run()  # not due yet: nothing moves
        assert stack.res.messages.get(message_id).state is MessageState.WAITING
        stack.dispatcher.deliver(message_id)  # as a redelivered task would
    assert [stack.res.instances.get(n).consecutive_failures for n in ("a", "b")] == [0, 0]
    usage = stack.res.limiter.usage([Candidate("a", 100, 1000), Candidate("b", 100, 1000)])
    assert [u.sent_hour for u in usage] == [0, 0]
    assert stack.scheduler.calls == []
    del stack.evolution.behaviour["a"], stack.evolution.behaviour["b"]
    assert stack.dispatcher.deliver(message_id).result is Result.SENT


# -- input -------------------------------------------------------------------------------
def pipeline(stack: Stack) -> Pipeline:
    return Pipeline(stack.intake, stack.dispatcher, stack.sweeper, CountdownBook(stack.redis))


def test_bad_input_through_the_task_is_recorded_failed_without_retry(stack: Stack) -> None:
    stack.add_instance("a")
    result = pipeline(stack).send((), {"phone": "123", "text": "oi"}, task_id="t1")
    assert result.result is Result.SKIPPED and stack.scheduler.calls == []
    with stack.res.sessions() as s:
        row = s.scalars(select(Message)).one()
    assert row.state is MessageState.FAILED and "not a valid number" in (row.last_error or "")


def test_redelivered_send_task_records_one_message(stack: Stack) -> None:
    stack.add_instance("a")
    for _ in range(2):
        pipeline(stack).send((), {"phone": phone(1), "text": "oi"}, task_id="same-task")
    assert len(stack.evolution.sent) == 1
    assert sum(stack.res.messages.count_by_state().values()) == 1


def test_enqueue_validation_raises_before_anything_is_recorded(stack: Stack) -> None:
    with pytest.raises(InvalidMessage):
        stack.intake.accept({"phone": phone(1), "text": ""})
    assert stack.res.messages.count_by_state() == {}


def test_same_idempotency_key_twice_is_one_message(stack: Stack) -> None:
    first = stack.accept(phone(1), "oi", idempotency_key="k1")
    assert stack.accept(phone(1), "oi", idempotency_key="k1") == first
    with pytest.raises(IdempotencyConflict):
        stack.accept(phone(1), "something else", idempotency_key="k1")
    assert sum(stack.res.messages.count_by_state().values()) == 1


def test_reused_key_with_other_content_through_the_task_is_recorded_failed(stack: Stack) -> None:
    stack.add_instance("a")
    pipeline(stack).send((), {"phone": phone(1), "text": "oi", "idempotency_key": "k"})
    pipeline(stack).send((), {"phone": phone(1), "text": "other", "idempotency_key": "k"})
    assert stack.res.messages.count_by_state() == {"sent": 1, "failed": 1}


# -- waiting -----------------------------------------------------------------------------
def test_nothing_online_requeues_with_capped_backoff_and_keeps_the_message(stack: Stack) -> None:
    stack.add_instance("a", status=InstanceStatus.DISCONNECTED)
    message_id = deliver_new(stack, 1)
    for _ in range(8):
        stack.dispatcher.deliver(message_id)
    countdowns = [c for _, c in stack.scheduler.calls]
    assert countdowns[:4] == [10.0, 20.0, 40.0, 80.0] and max(countdowns) == 300.0
    message = stack.res.messages.get(message_id)
    assert message.state is MessageState.QUEUED and message.requeues == 9 and message.attempts == 0


def test_message_expires_after_its_ttl_while_nothing_is_online(stack: Stack) -> None:
    stack.add_instance("a", status=InstanceStatus.DISCONNECTED)
    message_id = deliver_new(stack, 1, ttl_seconds=60)
    stack.set_clock(T0 + 61)
    assert stack.dispatcher.deliver(message_id).result is Result.EXPIRED
    assert stack.res.messages.get(message_id).state is MessageState.EXPIRED


def test_saturated_pool_parks_messages_until_the_next_hour(stack: Stack) -> None:
    stack.add_instance("a", hourly=1)
    deliver_new(stack, 1)
    parked = stack.res.messages.get(deliver_new(stack, 2))
    assert parked.state is MessageState.WAITING and parked.requeues == 1
    next_hour = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 11:00 in São Paulo
    assert parked.not_before == next_hour
    assert stack.scheduler.calls == []


def test_saturated_pool_requeues_with_a_countdown_when_the_slot_is_near(stack: Stack) -> None:
    stack.add_instance("a", hourly=1)
    stack.set_clock(T0 + 3600 - 100)
    deliver_new(stack, 1)
    message_id = deliver_new(stack, 2)
    assert stack.scheduler.calls == [(message_id, pytest.approx(100.0))]


# -- the send task's path: routed before it is recorded ---------------------------------
def statement_checkouts(stack: Stack) -> list[object]:
    """One entry per hot statement run (each is one pool checkout on its autocommit engine)."""
    seen: list[object] = []
    event.listen(stack.res.statements.pool, "checkout", lambda *args: seen.append(args))
    return seen


def hourly_sent(stack: Stack, name: str) -> int:
    [usage] = stack.res.limiter.usage([Candidate(name, 100, 1000)])
    return usage.sent_hour


def send_through_task(stack: Stack, i: int, contact: str = "doctor-1") -> Result:
    fields = {"phone": phone(i), "text": f"message {i}", "contact_id": contact}
    return pipeline(stack).send((), fields, task_id=f"task-{uuid.uuid4()}").result


def test_a_known_contact_costs_two_statements(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    assert send_through_task(stack, 1) is Result.SENT  # unknown here: accept, claim, sent
    checkouts = statement_checkouts(stack)
    assert send_through_task(stack, 2) is Result.SENT
    assert len(checkouts) == 2  # accept-and-claim, then sent
    assert [len(numbers) for numbers in stack.evolution.by_instance().values()] == [2]
    assert stack.res.messages.count_by_state() == {"sent": 2}


def test_a_stale_sticky_hint_is_corrected_by_the_database(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    send_through_task(stack, 1)
    first = preferred(stack, "doctor-1")
    other = "b" if first == "a" else "a"
    with stack.res.sessions.begin() as s:  # another worker moved the contact meanwhile
        s.execute(update(Contact).values(preferred_instance=other))
    assert send_through_task(stack, 2) is Result.SENT
    assert [r["instance"] for r in stack.evolution.sent] == [first, other]
    assert preferred(stack, "doctor-1") == other
    assert hourly_sent(stack, first) == 1  # the slot reserved on the stale hint was returned


def test_a_contact_another_worker_made_sticky_keeps_its_number(stack: Stack) -> None:
    """This worker never saw the contact, so it routes it as new (least loaded: b); the
    database knows better (a), and the message goes out on a."""
    stack.add_instance("a")
    stack.add_instance("b")
    with stack.res.sessions.begin() as s:
        s.add(Contact(id="doctor-1", phone="5511900010001", preferred_instance="a"))
    stack.res.limiter.reserve([Candidate("a", 100, 1000)], phone="x")  # a carries load
    assert send_through_task(stack, 1) is Result.SENT
    assert [r["instance"] for r in stack.evolution.sent] == ["a"]
    assert (hourly_sent(stack, "a"), hourly_sent(stack, "b")) == (2, 0)


def test_a_ban_elsewhere_moves_a_known_contact_on_its_next_message(stack: Stack) -> None:
    stack.add_instance("a")
    send_through_task(stack, 1)
    stack.add_instance("b")
    stack.res.instances.ban("a", "banned by the health check", datetime.now(UTC))
    assert send_through_task(stack, 2) is Result.SENT
    assert [r["instance"] for r in stack.evolution.sent] == ["a", "b"]
    assert preferred(stack, "doctor-1") == "b"


def test_a_known_contact_without_a_slot_is_recorded_and_parked(stack: Stack) -> None:
    stack.add_instance("a", hourly=1)
    send_through_task(stack, 1)
    assert send_through_task(stack, 2) is Result.PARKED
    states = stack.res.messages.count_by_state()
    assert states == {"sent": 1, "waiting": 1}
    assert hourly_sent(stack, "a") == 1


def test_a_known_contact_with_its_number_offline_waits_recorded(stack: Stack) -> None:
    stack.add_instance("a")
    send_through_task(stack, 1)
    stack.res.instances.set_status("a", InstanceStatus.DISCONNECTED, "closed", datetime.now(UTC))
    assert send_through_task(stack, 2) is Result.REQUEUED
    assert stack.res.messages.count_by_state() == {"sent": 1, "queued": 1}


def test_a_worker_guesses_unknown_contacts_are_new_only_while_they_are(
    make_stack: Callable[..., Stack],
) -> None:
    """Among new doctors, a worker routes a contact it does not know before recording it (two
    statements); when most unknown contacts already have a number (a restart, more contacts
    than the cache holds) it records first and routes on the database's answer, instead of
    reserving a slot on a wrong guess and giving it back. Either way each message goes out
    on its contact's sticky number."""
    sticky = StickyCache()
    stack = make_stack()
    stack.dispatcher = Dispatcher(
        stack.res.settings,
        stack.res.messages,
        stack.res.instances,
        stack.res.limiter,
        stack.res.evolution,
        stack.scheduler,
        sticky=sticky,
    )
    stack.add_instance("a")
    stack.add_instance("b")
    with stack.res.sessions.begin() as s:
        for n in range(30):
            s.add(Contact(id=f"doctor-{n}", phone="5511900010001", preferred_instance="a"))
    for n in range(30, 60):  # new doctors: the worker learns to route them first
        assert send_through_task(stack, n, contact=f"doctor-{n}") is Result.SENT
    assert sticky.guess_unknown_are_new()
    checkouts = statement_checkouts(stack)
    assert send_through_task(stack, 60, contact="doctor-60") is Result.SENT
    assert len(checkouts) == 2  # a new contact, routed first: accept-and-claim, then sent
    for n in range(30):
        assert send_through_task(stack, n, contact=f"doctor-{n}") is Result.SENT
    assert not sticky.guess_unknown_are_new()
    assert {r["instance"] for r in stack.evolution.sent[-30:]} == {"a"}
