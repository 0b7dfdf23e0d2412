"""Fault 2: Redis loses everything (restarted without persistence) with 500 messages queued.

Before the restart PostgreSQL holds, for 500 accepted messages: `queued` ones whose deliver
task lived only in Redis, `waiting` ones parked until `not_before` (a recipient gap), and
`sending` ones claimed by a worker that was then SIGKILLed mid-call. After the restart the
beat sweep must re-drive all of them from PostgreSQL (rules in worker/sweeper.py):
`queued` at once (the sentinel key vanished), `waiting` when due, `sending` once older than
SENDING_STUCK_AFTER_SECONDS. Everything is sent; nothing twice.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import defaultdict

import pytest
import redis

from config import Settings
from tests.chaos.harness import Chaos, digits, tally, wait_for
from tests.chaos.results import record
from tests.simulator_server import running_simulator
from tests.support.stack import phone
from worker.celery_app import DELIVER_MESSAGE, MONITOR_QUEUE
from worker.intake import Intake
from worker.resources import build_resources

pytestmark = pytest.mark.chaos

INSTANCES = ["inst-a", "inst-b", "inst-c"]
MESSAGES = 500
GAP_PHONES = 10  # two messages each: the second waits out the recipient gap
GAP_SECONDS = 12.0
IN_FLIGHT = 2  # the first worker's concurrency: claims hung in the simulator when killed


def test_redis_loses_everything_with_500_queued(chaos: Chaos) -> None:
    chaos.add_instances(INSTANCES)
    started = time.monotonic()
    settings = Settings(database_url=chaos.database_url, redis_url=chaos.redis.url, _env_file=None)  # type: ignore[call-arg]
    res = build_resources(settings)
    intake = Intake(settings, res.messages, res.limiter)
    app = chaos.producer()

    def enqueue(i: int, text: str) -> uuid.UUID:
        """What `tasks.enqueue_message` does: write the row, then publish the task."""
        message_id = intake.accept({"phone": phone(i), "text": text}).id
        app.send_task(DELIVER_MESSAGE, args=[str(message_id)])
        return message_id

    texts: list[str] = []
    try:
        with running_simulator(INSTANCES, seed=2, hang_seconds=60) as sim:
            env = chaos.env(
                sim.url,
                RECIPIENT_MIN_GAP_SECONDS=str(GAP_SECONDS),
                EVOLUTION_TIMEOUT_SECONDS="30",
                SENDING_STUCK_AFTER_SECONDS="32",  # above the longest send (1 + 30 s)
            )
            beat = chaos.beat(env)
            first = chaos.worker(env, concurrency=IN_FLIGHT, name="worker-first")
            # waiting: the second message to each of these phones is parked for the gap
            for i in range(GAP_PHONES * 2):
                texts.append(f"redis-loss gap {i}")
                enqueue(9000 + i % GAP_PHONES, texts[-1])
            wait_for(
                lambda: chaos.states() == {"sent": GAP_PHONES, "waiting": GAP_PHONES},
                30,
                "one message per gap phone sent, the other parked",
            )
            # sending: the next claims hang in Evolution until their worker dies
            sim.configure(failure_rate=1.0, failure_mode="timeout")
            for i in range(MESSAGES - GAP_PHONES * 2):
                texts.append(f"redis-loss queued {i}")
                enqueue(i, texts[-1])
            wait_for(lambda: chaos.count("sending") == IN_FLIGHT, 30, "claims in flight")
            first.kill()
            before = chaos.states()
            chaos.redis.restart()
            assert not survivors(chaos.redis.client()), "the restart must lose every key"
            lost_at = time.monotonic()
            sim.configure(failure_rate=0.0)
            chaos.worker(env, concurrency=4, name="worker-after")
            wait_for(lambda: chaos.count("sent") >= MESSAGES, 90, "every message sent")
            recovered_in = time.monotonic() - lost_at
            received = sim.messages()
            assert beat.proc.poll() is None, "beat must survive the Redis restart"
    finally:
        res.close()
    rows = chaos.rows()
    logs = "".join(p.read_text() for p in chaos.workdir.glob("worker-after*.log"))
    row = tally(
        "redis restart, data lost (500 in PostgreSQL)",
        rows,
        received,
        texts,
        notes=f"before: {before.get('queued', 0)} queued, {before.get('waiting', 0)} waiting, "
        f"{before.get('sending', 0)} sending (worker killed), "
        f"{before.get('sent', 0)} sent; all re-driven from PostgreSQL by the sweep in "
        f"{recovered_in:.0f} s",
        before=before,
        recovered_seconds=round(recovered_in, 1),
        seconds=round(time.monotonic() - started, 1),
    )
    record(row)
    # (a parked message the sweep woke before the restart counts `queued`: its task is lost too)
    assert before.get("sending", 0) == IN_FLIGHT and before.get("waiting", 0) > 0, before
    assert before.get("queued", 0) + before.get("waiting", 0) == (
        MESSAGES - GAP_PHONES - IN_FLIGHT
    ), before
    assert row.lost == 0 and row.sent == MESSAGES, row
    assert row.duplicated == 0, row
    assert "Redis lost its data (sentinel key gone)" in logs
    stuck = re.findall(r"re-drove (\d+) message\(s\) stuck in sending", logs)
    assert sum(int(n) for n in stuck) == IN_FLIGHT
    gap_times: dict[str, list[float]] = defaultdict(list)
    for message in received:
        if message["text"].startswith("redis-loss gap"):
            gap_times[message["number"]].append(message["received_at"])
    assert set(gap_times) == {digits(9000 + i) for i in range(GAP_PHONES)}
    for number, times in gap_times.items():  # the gap outlived the limiter's Redis keys
        assert len(times) == 2 and abs(times[1] - times[0]) >= GAP_SECONDS - 0.5, (number, times)


def survivors(client: redis.Redis) -> list[bytes]:
    """Keys that outlived the restart. The beat keeps running and publishes its next job to
    the monitor queue within a second (a fresh key, and its binding): those do not count."""
    fresh = (MONITOR_QUEUE.encode(), b"_kombu.binding." + MONITOR_QUEUE.encode())
    return [key for key in client.keys("*") if key not in fresh]
