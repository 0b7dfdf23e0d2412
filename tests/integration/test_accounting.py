"""Honest accounting on real PostgreSQL and Redis: every attempt is classified by what is
proven (sent, not sent, unknown), a slot is given back only when the send provably did not
happen, an unknown send is looked up on Evolution before anything is sent again, and caps
survive Redis losing its data."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import httpx
import pytest
from celery import Celery
from sqlalchemy import select, update

from config import Settings
from models.enums import AttemptOutcome, InstanceStatus, MessageState
from models.message_store import NewMessage
from models.tables import Contact, Instance, SendAttempt
from models.views import to_datetime
from tests.support.counting import ScriptCountingRedis
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker import keys
from worker.composition import CeleryScheduler
from worker.countdowns import CountdownBook
from worker.delivery import Result
from worker.limiter.policy import Candidate, SpacingPolicy
from worker.limiter.redis_backend import RedisLimiter
from worker.message_input import validate

GRACE = 10.0


def attempts(stack: Stack, message_id: uuid.UUID) -> list[AttemptOutcome]:
    with stack.res.sessions() as session:
        rows = session.scalars(
            select(SendAttempt.outcome)
            .where(SendAttempt.message_id == message_id)
            .order_by(SendAttempt.id)
        )
        return list(rows)


def spent(stack: Stack, instance: str = "a", hourly: int = 100) -> int:
    """Slots counted this hour on `instance` (what the limiter holds)."""
    (usage,) = stack.res.limiter.usage([Candidate(instance, hourly, 1000)])
    return usage.sent_hour


def deliver(stack: Stack, message_id: uuid.UUID) -> Result:
    return stack.dispatcher.deliver(message_id).result


def later(stack: Stack, seconds: float) -> None:
    stack.set_clock(stack.res.limiter.now() + seconds)


@pytest.fixture
def grace_stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack(unknown_outcome_grace_seconds=GRACE)


# -- not sent: the slot is given back -----------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_a_send_that_provably_did_not_happen_gives_its_slot_back(
    grace_stack: Stack, failure: Exception
) -> None:
    stack = grace_stack
    stack.add_instance("a")

    def refuse(request: httpx.Request) -> httpx.Response:
        raise failure

    stack.evolution.behaviour["a"] = refuse
    message_id = stack.accept(phone(1))
    assert deliver(stack, message_id) is Result.RETRYING
    assert spent(stack) == 0
    assert attempts(stack, message_id) == [AttemptOutcome.NOT_SENT]
    assert stack.res.messages.get(message_id).state is MessageState.QUEUED


def test_an_error_evolution_answered_in_its_envelope_gives_the_slot_back(
    grace_stack: Stack,
) -> None:
    stack = grace_stack
    stack.add_instance("a")
    envelope = {"status": 500, "error": "Internal Server Error", "response": {"message": "x"}}
    stack.evolution.behaviour["a"] = lambda request: httpx.Response(500, json=envelope)
    message_id = stack.accept(phone(1))
    assert deliver(stack, message_id) is Result.RETRYING
    assert spent(stack) == 0 and attempts(stack, message_id) == [AttemptOutcome.NOT_SENT]


# -- sent: any 2xx ----------------------------------------------------------------------------


def test_a_2xx_whose_body_cannot_be_read_is_sent_and_noted(grace_stack: Stack) -> None:
    stack = grace_stack
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = stack.evolution.deliver_then(
        httpx.Response(201, content=b"<html>accepted</html>")
    )
    message_id = stack.accept(phone(1))
    assert deliver(stack, message_id) is Result.SENT
    message = stack.res.messages.get(message_id)
    assert message.state is MessageState.SENT and message.provider_message_id is None
    assert message.last_error is not None and "provider id unknown" in message.last_error
    assert attempts(stack, message_id) == [AttemptOutcome.SENT] and spent(stack) == 1
    assert deliver(stack, message_id) is Result.SKIPPED  # never sent again
    assert len(stack.evolution.sent) == 1


# -- unknown: the slot stays spent, Evolution is asked first ------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("late"),
        httpx.ReadError("connection reset by peer"),
        httpx.Response(502, content=b"<html>502 Bad Gateway</html>"),
    ],
    ids=["read timeout", "reset after writing", "proxy 502"],
)
def test_a_send_that_went_out_unseen_is_found_and_recorded_sent_once(
    grace_stack: Stack, failure: Exception | httpx.Response
) -> None:
    stack = grace_stack
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = stack.evolution.deliver_then(failure)
    message_id = stack.accept(phone(1))
    assert deliver(stack, message_id) is Result.VERIFYING
    waiting = stack.res.messages.get(message_id)
    assert waiting.state is MessageState.WAITING and spent(stack) == 1
    assert waiting.last_error is not None and waiting.last_error.startswith("outcome unknown")
    assert attempts(stack, message_id) == [AttemptOutcome.UNKNOWN]

    assert deliver(stack, message_id) is Result.VERIFYING  # not before the grace
    later(stack, GRACE + 1)
    assert deliver(stack, message_id) is Result.SENT
    sent = stack.res.messages.get(message_id)
    assert sent.state is MessageState.SENT
    assert sent.provider_message_id == stack.evolution.sent[0]["id"]
    assert attempts(stack, message_id) == [AttemptOutcome.SENT]
    assert len(stack.evolution.sent) == 1 and spent(stack) == 1


def test_a_late_answering_evolution_never_takes_more_than_the_cap(grace_stack: Stack) -> None:
    """The reported case: a cap of 3 and an Evolution that answers after the read timeout
    took 15 sends, 5 copies of each message. Now: 3 sends, one per message, all `sent`."""
    stack = grace_stack
    stack.add_instance("a", hourly=3)
    stack.evolution.behaviour["a"] = stack.evolution.deliver_then(httpx.ReadTimeout("late"))
    ids = [stack.accept(phone(i), f"message {i}") for i in range(5)]
    for _ in range(6):
        for message_id in ids:
            deliver(stack, message_id)
        later(stack, GRACE + 1)
    states = [stack.res.messages.get(i).state for i in ids]
    assert len(stack.evolution.sent) == 3
    assert len({(r["number"], r["text"]) for r in stack.evolution.sent}) == 3
    assert states.count(MessageState.SENT) == 3
    assert spent(stack, hourly=3) == 3


def test_an_unknown_send_evolution_has_not_got_is_sent_again_after_two_look_ups(
    grace_stack: Stack,
) -> None:
    stack = grace_stack
    stack.add_instance("a")
    deliver(stack, stack.accept(phone(9), "an earlier message"))  # Evolution keeps messages

    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("late")

    stack.evolution.behaviour["a"] = lost
    message_id = stack.accept(phone(1))
    assert deliver(stack, message_id) is Result.VERIFYING
    del stack.evolution.behaviour["a"]
    later(stack, GRACE + 1)
    assert deliver(stack, message_id) is Result.VERIFYING  # the first look-up found nothing
    assert len(stack.evolution.sent) == 1
    later(stack, GRACE + 1)
    assert deliver(stack, message_id) is Result.SENT  # nothing the second time: sent again
    assert attempts(stack, message_id) == [AttemptOutcome.ABSENT, AttemptOutcome.SENT]
    assert len(stack.evolution.sent) == 2
    assert spent(stack) == 3  # the unknown attempt's slot stays spent


@pytest.mark.parametrize("keeps_nothing", [False, True], ids=["no route", "keeps no messages"])
@pytest.mark.parametrize("policy", ["retry", "fail"])
def test_when_evolution_cannot_be_asked_the_policy_decides(
    make_stack: Callable[..., Stack], policy: str, keeps_nothing: bool
) -> None:
    stack = make_stack(unknown_outcome_grace_seconds=GRACE, uncertain_send_policy=policy)
    stack.add_instance("a")
    stack.evolution.lookups = keeps_nothing

    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("late")

    stack.evolution.behaviour["a"] = lost
    message_id = stack.accept(phone(1))
    assert deliver(stack, message_id) is Result.VERIFYING
    del stack.evolution.behaviour["a"]
    later(stack, GRACE + 1)
    result = deliver(stack, message_id)
    message = stack.res.messages.get(message_id)
    if policy == "fail":
        assert result is Result.FAILED and message.state is MessageState.FAILED
        assert message.last_error is not None and message.last_error.startswith("outcome unknown")
        assert stack.evolution.sent == []
    else:
        assert result is Result.SENT and len(stack.evolution.sent) == 1
        assert attempts(stack, message_id) == [AttemptOutcome.UNVERIFIED, AttemptOutcome.SENT]


def test_a_look_up_that_cannot_reach_evolution_waits_and_asks_again(grace_stack: Stack) -> None:
    stack = grace_stack
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = stack.evolution.deliver_then(httpx.ReadTimeout("late"))
    message_id = stack.accept(phone(1))
    deliver(stack, message_id)
    real = stack.evolution._find

    def unreachable(instance: str, query: dict[str, object]) -> httpx.Response:
        raise httpx.ConnectError("refused")

    stack.evolution._find = unreachable  # type: ignore[method-assign]
    later(stack, GRACE + 1)
    assert deliver(stack, message_id) is Result.VERIFYING
    assert stack.res.messages.get(message_id).state is MessageState.WAITING
    stack.evolution._find = real  # type: ignore[method-assign]
    later(stack, 3600)
    assert deliver(stack, message_id) is Result.SENT
    assert len(stack.evolution.sent) == 1


def test_a_dead_workers_claim_is_looked_up_not_sent_again(grace_stack: Stack) -> None:
    """A claim the sweep finds stuck may have been sent: it is looked up first."""
    stack = grace_stack
    stack.add_instance("a")
    message_id = stack.accept(phone(1))
    assert (
        stack.res.messages.claim(
            message_id, "a", contact_id=None, seen_preference=None, now=to_datetime(T0)
        ).value
        == "claimed"
    )
    stack.evolution.deliver(_send_request("a", phone_digits(1), "oi"))  # it went out, unseen
    later(stack, stack.res.settings.sending_stuck_after_seconds + 1)
    report = stack.sweeper.run()
    assert report.stuck == 1
    assert attempts(stack, message_id) == [AttemptOutcome.UNKNOWN]
    assert deliver(stack, message_id) is Result.SENT
    assert len(stack.evolution.sent) == 1


# -- caps survive Redis losing its data -----------------------------------------------------


def test_counters_are_rebuilt_from_postgresql_when_redis_lost_them(grace_stack: Stack) -> None:
    stack = grace_stack
    stack.add_instance("a", hourly=3)
    for i in range(3):
        assert deliver(stack, stack.accept(phone(i), f"m{i}")) is Result.SENT
    rebuilds = stack.scripts.rebuilds
    stack.redis.flushdb()  # Redis lost its data in the middle of the hour
    stack.set_clock(T0)
    waiting = stack.accept(phone(7), "after the loss")
    assert deliver(stack, waiting) in (Result.REQUEUED, Result.PARKED)
    assert len(stack.evolution.sent) == 3
    assert spent(stack, hourly=3) == 3
    assert stack.scripts.rebuilds == rebuilds + 1


def test_the_rebuild_runs_once_across_workers(grace_stack: Stack) -> None:
    stack = grace_stack
    stack.add_instance("a")
    deliver(stack, stack.accept(phone(1)))
    stack.redis.delete(keys.COUNTERS_SENTINEL, *stack.redis.keys("{zd}:sent:*"))
    scripts = ScriptCountingRedis(connection_pool=stack.redis.connection_pool)
    limiters = [
        RedisLimiter(
            scripts,
            stack.res.settings.zone,
            SpacingPolicy(),
            test_clock_enabled=True,
            counters=stack.res.messages.spent_since,
        )
        for _ in range(6)
    ]
    start = threading.Barrier(len(limiters))

    def reserve(limiter: RedisLimiter) -> None:
        start.wait()
        limiter.reserve([Candidate("a", 100, 1000)], phone="5511900000001")

    threads = [threading.Thread(target=reserve, args=(limiter,)) for limiter in limiters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert scripts.rebuilds == 1
    assert spent(stack) == 1 + len(limiters)


# -- helpers --------------------------------------------------------------------------------


def phone_digits(i: int) -> str:
    return "".join(ch for ch in phone(i) if ch.isdigit())


def _send_request(instance: str, number: str, text: str) -> httpx.Request:
    return httpx.Request(
        "POST",
        f"http://evolution.test/message/sendText/{instance}",
        json={"number": number, "text": text},
    )


# -- smaller holes ----------------------------------------------------------------------------


def test_a_replayed_idempotency_key_does_not_move_the_sticky_number(grace_stack: Stack) -> None:
    stack = grace_stack
    stack.add_instance("a")
    stack.add_instance("b")
    store = stack.res.messages
    keyed = new_message(1, idempotency_key="order-1")
    store.accept_claiming(keyed, "a", seen=None)
    with stack.res.sessions.begin() as session:
        session.execute(update(Contact).values(preferred_instance="b"))
    replay = store.accept_claiming(new_message(1, idempotency_key="order-1"), "a", seen="b")
    assert not replay.created
    with stack.res.sessions() as session:
        assert session.scalar(select(Contact.preferred_instance)) == "b"


def test_a_routing_snapshot_from_before_a_ban_does_not_send_from_the_banned_number(
    grace_stack: Stack,
) -> None:
    stack = grace_stack
    stack.add_instance("a")
    stack.add_instance("b")
    first = stack.accept(phone(1), "first", contact_id="doc")
    assert stack.dispatcher.deliver(first).instance is not None
    pinned = stack.res.messages.get(first).instance
    other = "b" if pinned == "a" else "a"
    stack.res.instances.snapshot()  # this worker's snapshot: both connected
    with stack.res.sessions.begin() as session:  # another process bans the sticky number
        session.execute(
            update(Instance).where(Instance.name == pinned).values(status=InstanceStatus.BANNED)
        )
    second = stack.accept(phone(1), "second", contact_id="doc")
    delivered = stack.dispatcher.deliver(second)
    assert delivered.result is Result.SENT and delivered.instance == other
    assert [r["instance"] for r in stack.evolution.sent] == [pinned, other]
    with stack.res.sessions() as session:
        assert session.scalar(select(Contact.preferred_instance)) == other


def test_a_retry_after_longer_than_a_countdown_parks_the_message(grace_stack: Stack) -> None:
    stack = grace_stack
    stack.add_instance("a")
    stack.evolution.behaviour["a"] = lambda request: httpx.Response(
        429, json={}, headers={"Retry-After": "1000"}
    )
    message_id = stack.accept(phone(1))
    delivered = stack.dispatcher.deliver(message_id)
    assert delivered.result is Result.PARKED
    message = stack.res.messages.get(message_id)
    assert message.state is MessageState.WAITING and message.not_before is not None
    assert message.not_before.timestamp() == pytest.approx(T0 + 600)  # RETRY_BACKOFF_MAX
    assert stack.scheduler.calls == []  # no countdown task the sweep could double


def test_an_outcome_is_recorded_only_under_the_claim_that_sent(grace_stack: Stack) -> None:
    """The claim's time is its token: once the sweep released a claim, the old holder's
    late record changes nothing."""
    stack = grace_stack
    stack.add_instance("a")
    store = stack.res.messages
    message_id = stack.accept(phone(1))
    claimed_at = to_datetime(T0)
    store.claim(message_id, "a", contact_id=None, seen_preference=None, now=claimed_at)
    later(stack, stack.res.settings.sending_stuck_after_seconds + 1)
    stack.sweeper.run()  # released: waiting, attempt unknown
    store.claim(message_id, "a", contact_id=None, seen_preference=None, now=to_datetime(T0 + 900))
    assert not store.mark_sent(message_id, "late-id", claimed_at, claimed_at=claimed_at)
    assert not store.return_to_queue(message_id, "late error", claimed_at, claimed_at=claimed_at)
    assert not store.mark_failed(message_id, "late failure", claimed_at, claimed_at=claimed_at)
    assert store.get(message_id).state is MessageState.SENDING
    later_claim = to_datetime(T0 + 900)
    assert store.mark_sent(message_id, "id", later_claim, claimed_at=later_claim)


def test_countdown_tasks_out_at_once_are_bounded(grace_stack: Stack, settings: Settings) -> None:
    stack = grace_stack
    book = CountdownBook(stack.redis, limit=3)
    app = Celery("bound-test", broker=settings.redis_url)
    scheduler = CeleryScheduler(app, book, stack.res.messages, stack.res.limiter.now)
    ids = [stack.accept(phone(i), f"m{i}") for i in range(5)]
    for message_id in ids:
        scheduler.schedule(message_id, 60.0)
    assert book.held() == 3
    assert stack.redis.llen("celery") == 3  # three countdown tasks published
    parked = [stack.res.messages.get(i) for i in ids[3:]]
    assert all(m.state is MessageState.WAITING and m.not_before is not None for m in parked)
    book.done(ids[0])  # its task ran
    assert book.admit(ids[3], T0 + 60, T0)
    app.close()


def new_message(i: int, **fields: object) -> NewMessage:
    return validate(
        {"phone": phone(i), "text": f"message {i}", "contact_id": "doc", **fields},
        now=T0,
        default_ttl_seconds=3600,
    )
