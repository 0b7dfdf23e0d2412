"""Pause and resume on real PostgreSQL and Redis: held messages park, resume wakes them,
paused instances leave routing, every process sees a change within its cache time."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from models.enums import MessageState
from models.pause_store import PauseStore
from models.tables import Message
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker import keys
from worker.api import create_app, deps_from_resources
from worker.composition import Pipeline
from worker.controls import ControlError, Controls
from worker.countdowns import CountdownBook
from worker.delivery import Dispatcher, Result
from worker.pauses import PauseBoard
from worker.policy.pauses import PauseScope


def controls(stack: Stack) -> Controls:
    return Controls(stack.res.pauses, stack.res.instances, stack.res.limiter.now)


def row(stack: Stack, message_id: uuid.UUID) -> Any:
    with stack.res.sessions() as s:
        return s.execute(
            select(Message.state, Message.not_before, Message.wait_reason, Message.attempts,
                   Message.requeues).where(Message.id == message_id)
        ).one()  # fmt: skip


def test_paused_message_parks_without_an_attempt_and_resume_sends_it(stack: Stack) -> None:
    stack.add_instance("a")
    controls(stack).pause()
    message_id = stack.accept(phone(1))
    delivered = stack.dispatcher.deliver(message_id)
    assert delivered.result is Result.PARKED and delivered.detail == "all sending paused"
    parked = row(stack, message_id)
    assert parked.state == "waiting" and parked.wait_reason == "paused"
    assert parked.attempts == 0 and parked.requeues == 0
    assert parked.not_before == stack.res.messages.get(message_id).expires_at
    assert stack.scheduler.calls == [] and stack.evolution.sent == []
    assert stack.sweeper.run().woken == 0  # still paused: the sweep leaves it alone

    assert controls(stack).resume() == {
        "scope": "all", "target": None, "resumed": True, "woken": 1,
    }  # fmt: skip
    assert stack.sweeper.run().woken == 1
    assert stack.scheduler.calls == [(message_id, 0.0)]
    assert stack.dispatcher.deliver(message_id).result is Result.SENT
    assert row(stack, message_id).wait_reason is None


def test_a_new_message_through_the_task_is_recorded_then_parked(stack: Stack) -> None:
    stack.add_instance("a")
    pipe = Pipeline(stack.intake, stack.dispatcher, stack.sweeper, CountdownBook(stack.redis))
    pipe.send((), {"phone": phone(1), "text": "first"}, task_id="t0")  # teaches the cache
    controls(stack).pause(campaign="nov")
    result = pipe.send((), {"phone": phone(1), "text": "x", "campaign": "nov"}, task_id="t1")
    assert result.result is Result.PARKED and result.detail == "campaign 'nov' paused"
    assert len(stack.evolution.sent) == 1
    other = pipe.send((), {"phone": phone(1), "text": "y", "campaign": "dec"}, task_id="t2")
    assert other.result is Result.SENT


def test_campaign_resume_wakes_only_that_campaign(stack: Stack) -> None:
    stack.add_instance("a")
    c = controls(stack)
    c.pause(campaign="nov")
    c.pause(campaign="dec")
    nov = stack.accept(phone(1), campaign="nov")
    dec = stack.accept(phone(2), campaign="dec")
    free = stack.accept(phone(3))
    assert [stack.dispatcher.deliver(i).result for i in (nov, dec, free)] == [
        Result.PARKED, Result.PARKED, Result.SENT,
    ]  # fmt: skip
    assert c.resume(campaign="nov")["woken"] == 1
    stack.sweeper.run()
    assert stack.dispatcher.deliver(nov).result is Result.SENT
    assert row(stack, dec).state == "waiting"


def test_a_message_still_held_by_another_pause_parks_again(stack: Stack) -> None:
    stack.add_instance("a")
    c = controls(stack)
    c.pause()
    c.pause(campaign="nov")
    message_id = stack.accept(phone(1), campaign="nov")
    stack.dispatcher.deliver(message_id)
    c.resume()
    stack.sweeper.run()
    assert stack.dispatcher.deliver(message_id).result is Result.PARKED
    assert row(stack, message_id).wait_reason == "paused"


def test_a_paused_message_whose_ttl_passes_expires(stack: Stack) -> None:
    stack.add_instance("a")
    controls(stack).pause()
    message_id = stack.accept(phone(1), ttl_seconds=600)
    stack.dispatcher.deliver(message_id)
    stack.set_clock(T0 + 601)
    assert stack.sweeper.run().woken == 1
    assert stack.dispatcher.deliver(message_id).result is Result.EXPIRED


def test_a_paused_instance_leaves_routing_and_shows_paused(stack: Stack) -> None:
    stack.add_instance("a")
    stack.add_instance("b")
    controls(stack).pause(instance="a")
    for i in range(6):
        stack.dispatcher.deliver(stack.accept(phone(i), contact_id=f"doc-{i}"))
    assert set(stack.evolution.by_instance()) == {"b"}
    rows = {r.view.name: r for r in deps_from_resources(stack.res).stats.overview().rows}
    assert rows["a"].paused and not rows["a"].available
    assert rows["a"].to_json()["paused"] is True and rows["b"].to_json()["paused"] is False
    controls(stack).resume(instance="a")
    for i in range(6, 12):
        stack.dispatcher.deliver(stack.accept(phone(i), contact_id=f"doc-{i}"))
    assert "a" in stack.evolution.by_instance()


def test_every_instance_paused_means_nothing_online(stack: Stack) -> None:
    stack.add_instance("a")
    controls(stack).pause(instance="a")
    delivered = stack.dispatcher.deliver(stack.accept(phone(1)))
    assert delivered.result is Result.REQUEUED and delivered.detail == "no instance online"


def test_another_process_sees_a_pause_within_its_cache_time(stack: Stack) -> None:
    ticks = [100.0]
    other = PauseBoard(PauseStore(stack.res.sessions), stack.redis, monotonic=lambda: ticks[0])
    assert other.current().empty
    controls(stack).pause(campaign="nov")
    assert other.current().empty  # cached for one second
    ticks[0] += 1.0
    assert other.current().holding("nov") == "campaign 'nov' paused"
    first = other.current()
    ticks[0] += 1.0
    assert other.current() is first  # unchanged: same object, so routing caches hold


def test_a_lost_mirror_is_rebuilt_from_postgresql(stack: Stack) -> None:
    controls(stack).pause()
    stack.redis.delete(keys.PAUSES)
    board = PauseBoard(PauseStore(stack.res.sessions), stack.redis)
    assert board.current().all_since == T0
    assert stack.redis.hget(keys.PAUSES, "all:") is not None
    assert 0 < stack.redis.ttl(keys.PAUSES) <= 30


def test_pausing_twice_keeps_the_first_since_and_resume_of_nothing_says_so(
    stack: Stack,
) -> None:
    c = controls(stack)
    first = c.pause(campaign="nov")
    stack.set_clock(T0 + 60)
    assert c.pause(campaign="nov")["since"] == first["since"]
    assert c.pauses() == [{"scope": "campaign", "target": "nov", "since": first["since"]}]
    assert c.resume(campaign="dec")["resumed"] is False


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"instance": "nope"}, "no instance named 'nope'"),
        ({"instance": "a", "campaign": "c"}, "not both"),
        ({"campaign": " "}, "campaign must not be empty"),
    ],
)
def test_bad_controls_say_why(stack: Stack, kwargs: dict[str, str], reason: str) -> None:
    stack.add_instance("a")
    with pytest.raises(ControlError, match=reason):
        controls(stack).pause(**kwargs)


def test_api_controls_need_the_token_and_pause_and_resume(stack: Stack) -> None:
    stack.add_instance("a")
    settings = stack.res.settings.model_copy(update={"api_token": SecretStr("tok")})
    deps = deps_from_resources(stack.res)
    client = TestClient(create_app(deps.__class__(**{**deps.__dict__, "settings": settings})))
    assert client.post("/controls/pause", json={}).status_code == 401
    auth = {"Authorization": "Bearer tok"}
    paused = client.post("/controls/pause", json={"instance": "a"}, headers=auth)
    assert paused.status_code == 200 and paused.json()["scope"] == "instance"
    assert client.post("/controls/pause", headers=auth).json()["scope"] == "all"
    listed = client.get("/controls/pauses", headers=auth).json()["pauses"]
    assert [(p["scope"], p["target"]) for p in listed] == [("all", None), ("instance", "a")]
    rows = client.get("/dashboard/instances", headers=auth).json()["instances"]
    assert rows[0]["paused"] is True and rows[0]["available"] is False
    bad = client.post("/controls/pause", json={"instance": "zz"}, headers=auth)
    assert bad.status_code == 422 and "no instance named" in bad.json()["detail"]
    extra = client.post("/controls/resume", json={"everything": True}, headers=auth)
    assert extra.status_code == 422
    resumed = client.post("/controls/resume", json={}, headers=auth).json()
    assert resumed == {"scope": "all", "target": None, "resumed": True, "woken": 0}
    assert stack.res.pauses.fresh().entries()[0].scope is PauseScope.INSTANCE


def test_paused_messages_count_as_waiting(stack: Stack) -> None:
    stack.add_instance("a")
    controls(stack).pause()
    stack.dispatcher.deliver(stack.accept(phone(1)))
    assert stack.res.messages.count_by_state() == {MessageState.WAITING.value: 1}


def test_a_worker_with_a_stale_view_of_a_resume_delivers_instead_of_parking(
    stack: Stack,
) -> None:
    """Resume, then a worker whose cached view still says paused tries the woken message:
    the park is refused (the pause row is gone) and the message is sent."""
    stack.add_instance("a")
    stale = PauseBoard(PauseStore(stack.res.sessions), stack.redis, monotonic=lambda: 0.0)
    dispatcher = Dispatcher(
        stack.res.settings, stack.res.messages, stack.res.instances, stack.res.limiter,
        stack.res.evolution, stack.scheduler, pauses=stale,
    )  # fmt: skip
    controls(stack).pause()
    message_id = stack.accept(phone(1))
    assert dispatcher.deliver(message_id).result is Result.PARKED
    assert stale.current().all_since is not None  # cached, never refreshed by the clock
    controls(stack).resume()
    stack.sweeper.run()
    assert dispatcher.deliver(message_id).result is Result.SENT
    assert stale.current().empty  # a refused park re-reads the pauses


def test_park_and_resume_racing_never_strand_a_message(stack: Stack) -> None:
    """The park share-locks the pause row: a resume deleting it waits for the park and then
    wakes the message, or deletes first and the park is refused."""
    store = PauseStore(stack.res.sessions)
    controls(stack).pause()
    ids = [stack.accept(phone(i)) for i in range(40)]
    at = stack.res.messages.get(ids[0]).created_at
    outcomes: list[bool] = []

    def park_all() -> None:
        outcomes.extend(store.park(i, None, at, at) for i in ids)

    parker = threading.Thread(target=park_all)
    parker.start()
    store.resume("all", "", at)
    parker.join()
    with stack.res.sessions() as s:
        stranded = s.scalar(
            select(func.count()).where(Message.state == "waiting", Message.wait_reason == "paused")
        )
    assert stranded == 0 and len(outcomes) == 40
