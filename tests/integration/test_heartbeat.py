"""Heartbeats on real Redis and the sweep's release of dead processes' claims on real
PostgreSQL (worker/heartbeat.py, worker/sweeper.py). Time is injected: a dead process is
one whose last beat was written with an old score."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from models.claimant import claimant
from models.views import to_datetime
from tests.support.evolution import T0
from tests.support.processes import wait_until
from tests.support.stack import Stack, phone
from worker.heartbeat import Heartbeats, HeartbeatThread
from worker.keys import HEARTBEATS, UNACKED_OWNERS
from worker.sweeper import DeadWorkers, Sweeper

DEAD_AFTER = 30.0
GONE = "host-b:4242:deadbeef"


def claim_as(stack: Stack, message_id: object, name: str, at: float) -> None:
    with stack.res.sessions.begin() as session:
        session.execute(
            text(
                "UPDATE messages SET state = 'sending', instance = 'a', claimed_at = :at, "
                "claimed_by = :name WHERE id = :id"
            ),
            {"at": to_datetime(at), "name": name, "id": message_id},
        )


def state_of(stack: Stack, message_id: object) -> str:
    return str(stack.res.messages.get(message_id).state.value)  # type: ignore[arg-type]


def test_dead_is_silent_for_longer_than_the_deadline_and_held_tags_follow_owners(
    stack: Stack,
) -> None:
    beats = Heartbeats(stack.redis, DEAD_AFTER)
    beats.beat("alive:1:a")
    now = beats.server_now()
    stack.redis.zadd(HEARTBEATS, {GONE: now - DEAD_AFTER - 1, "late:2:b": now - DEAD_AFTER + 5})
    assert beats.dead() == [GONE]
    assert sorted(beats.alive()) == ["alive:1:a", "late:2:b"]
    stack.redis.hset(UNACKED_OWNERS, mapping={"t1": GONE, "t2": "alive:1:a", "t3": GONE})
    assert sorted(beats.held_by([GONE])) == ["t1", "t3"]
    beats.forget([GONE])
    assert beats.dead() == []


def test_a_heartbeat_thread_beats_until_stopped_then_forgets_itself(stack: Stack) -> None:
    beats = Heartbeats(stack.redis, DEAD_AFTER)
    thread = HeartbeatThread(beats, "me:1:x")
    thread.start()
    try:
        wait_until(lambda: stack.redis.zscore(HEARTBEATS, "me:1:x") is not None, 5, "a beat")
    finally:
        thread.stop()
    assert stack.redis.zscore(HEARTBEATS, "me:1:x") is None
    assert thread.interval == DEAD_AFTER / 3


def test_the_sweep_releases_a_dead_process_claims_at_once_and_restores_its_messages(
    stack: Stack,
) -> None:
    stack.add_instance("a")
    dead_claim, live_claim = stack.accept(phone(1)), stack.accept(phone(2))
    claim_as(stack, dead_claim, GONE, T0 - 5)  # far younger than SENDING_STUCK_AFTER_SECONDS
    claim_as(stack, live_claim, claimant(), T0 - 5)
    beats = Heartbeats(stack.redis, DEAD_AFTER)
    beats.beat(claimant())
    stack.redis.zadd(HEARTBEATS, {GONE: beats.server_now() - DEAD_AFTER - 1})
    stack.redis.hset(UNACKED_OWNERS, mapping={"tag-of-gone": GONE, "tag-of-me": claimant()})
    restored: list[str] = []

    def restore(tags: Sequence[str]) -> int:
        restored.extend(tags)
        return len(tags)

    res = stack.res
    sweeper = Sweeper(
        res.settings,
        res.sweeps,
        res.limiter,
        res.redis,
        stack.scheduler,
        dead_workers=DeadWorkers(beats, restore),
    )
    report = sweeper.run()
    assert report.dead_workers == 1 and report.restored == 1 and report.stuck == 1
    # released as a send whose outcome is unknown: due now, looked up before any resend
    assert state_of(stack, dead_claim) == "waiting"
    assert state_of(stack, live_claim) == "sending"  # alive: never touched
    assert (dead_claim, 0.0) in stack.scheduler.calls
    assert restored == ["tag-of-gone"]
    assert beats.dead() == []  # forgotten once released
    assert sweeper.run().dead_workers == 0
