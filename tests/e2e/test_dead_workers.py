"""Dead workers are noticed in seconds, slow ones never (worker/heartbeat.py).

Real `celery -A worker worker` and `beat` subprocesses: one worker is SIGKILLed (its whole
process group) while it holds `sending` claims and unacknowledged broker messages; the
other worker's sweep re-drives both within seconds, although the stuck-send threshold and
the visibility timeout are set far beyond the test. A worker whose sends take 20 s each is
never taken for dead.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.simulator_server import running_simulator
from tests.support.processes import ServiceProcess, producer, service_env, start_worker, wait_until
from worker.keys import HEARTBEATS, UNACKED_OWNERS

pytestmark = pytest.mark.e2e

SEND = "zapdispatch.send_message"
DEAD_AFTER_SECONDS = 3
#: Thresholds that would otherwise re-drive a dead worker's messages: far beyond the test.
SLOW_RECOVERY = {
    "SENDING_STUCK_AFTER_SECONDS": "900",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3600",
    "MAX_COUNTDOWN_SECONDS": "300",
}


def stack_env(database_url: str, redis_url: str, sim_url: str, **extra: str) -> dict[str, str]:
    return service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        EVOLUTION_API_URL=sim_url,
        WORKER_DEAD_AFTER_SECONDS=str(DEAD_AFTER_SECONDS),
        SWEEP_INTERVAL_SECONDS="1",
        HEALTH_CHECK_INTERVAL_SECONDS="3600",
        **SLOW_RECOVERY,
        **extra,
    )


def start_beat(start: Callable[..., ServiceProcess], env: dict[str, str], tmp: Path) -> None:
    beat = start(["beat", "-l", "info", "--schedule", str(tmp / "beat-schedule")], env, "beat")
    beat.wait_for("beat: Starting")


def group_pids(process: ServiceProcess) -> set[int]:
    """The worker's main process and its pool children (its process group)."""
    return set(process.group())


def pid_of(claimant: str) -> int:
    return int(claimant.split(":")[1])


def rows(engine: Engine, sql: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def count_sent(engine: Engine) -> int:
    return len(rows(engine, "SELECT id FROM messages WHERE state = 'sent'"))


def test_a_sigkilled_worker_s_messages_are_re_driven_in_seconds(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    InstanceStore(make_session_factory(engine)).add(
        "inst-a", "5511900000000", 10_000, 100_000, status=InstanceStatus.CONNECTED
    )
    messages = 24
    with running_simulator(["inst-a"], latency_ms=1500) as sim:
        env = stack_env(database_url, redis_url, sim.url)
        start_beat(start_celery, env, tmp_path)
        doomed = start_worker(start_celery, env, concurrency=2, name="doomed")
        survivor = start_worker(start_celery, env, concurrency=2, name="survivor")
        app = producer(redis_url)
        for i in range(messages):
            app.send_task(SEND, kwargs={"phone": f"+55 11 98888-{i:04d}", "text": f"m{i}"})
        pids = group_pids(doomed)

        def doomed_claims() -> list[str]:
            sending = rows(engine, "SELECT claimed_by FROM messages WHERE state = 'sending'")
            return [str(c) for (c,) in sending if c and pid_of(str(c)) in pids]

        wait_until(lambda: bool(doomed_claims()), 30, "a claim of the doomed worker")
        doomed.kill()
        killed_at = time.monotonic()
        sending = rows(engine, "SELECT text, claimed_by FROM messages WHERE state = 'sending'")
        in_flight = {str(t) for t, _ in sending}
        doomed_held = {str(t) for t, c in sending if c and pid_of(str(c)) in pids}
        owners = [v.decode() for v in redis_client.hvals(UNACKED_OWNERS)]
        held_by_doomed = sum(1 for owner in owners if pid_of(owner) in pids)

        def doomed_held_sent() -> bool:
            sent = rows(engine, "SELECT text FROM messages WHERE state = 'sent'")
            restored = not any(
                pid_of(o.decode()) in pids for o in redis_client.hvals(UNACKED_OWNERS)
            )
            return doomed_held <= {str(t) for (t,) in sent} and restored

        wait_until(doomed_held_sent, 45, "the dead worker's claims sent, its messages restored")
        recovered_in = time.monotonic() - killed_at
        wait_until(lambda: count_sent(engine) == messages, 45, f"all {messages} sent")
        all_sent_in = time.monotonic() - killed_at
        received = sim.messages()
        log = survivor.output()
    print(
        f"recovery after SIGKILL: the dead worker's {len(doomed_held)} claim(s) sent and its "
        f"{held_by_doomed} broker message(s) restored {recovered_in:.1f} s after the kill; "
        f"all {messages} sent after {all_sent_in:.1f} s"
    )
    assert held_by_doomed >= 1  # the doomed consumer held broker messages when killed
    assert recovered_in < 30, recovered_in
    assert "silent for" in log and "claim(s) released" in log, log[-3000:]
    sent_times = Counter(r["text"] for r in received)
    assert set(sent_times) == {f"m{i}" for i in range(messages)}
    duplicated = {t for t, n in sent_times.items() if n > 1}
    assert duplicated <= in_flight, (duplicated, in_flight)
    # The survivor may be running a beat task right now: only the dead held nothing any more.
    assert not any(pid_of(o.decode()) in pids for o in redis_client.hvals(UNACKED_OWNERS))
    alive = {m.decode() for m in redis_client.zrange(HEARTBEATS, 0, -1)}
    assert not any(pid_of(name) in pids for name in alive)  # the dead were forgotten


def test_a_worker_busy_with_20_second_sends_is_not_taken_for_dead(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    InstanceStore(make_session_factory(engine)).add(
        "inst-a", "5511900000000", 10_000, 100_000, status=InstanceStatus.CONNECTED
    )
    with running_simulator(["inst-a"], latency_ms=20_000) as sim:
        env = stack_env(database_url, redis_url, sim.url, EVOLUTION_TIMEOUT_SECONDS="40")
        start_beat(start_celery, env, tmp_path)
        busy = start_worker(start_celery, env, concurrency=2, name="busy")
        app = producer(redis_url)
        for i in range(2):
            app.send_task(SEND, kwargs={"phone": f"+55 11 98888-{i:04d}", "text": f"slow{i}"})
        wait_until(lambda: count_sent(engine) == 2, 60, "both slow sends recorded")
        received = sim.messages()
        log = busy.output()
    assert sorted(r["text"] for r in received) == ["slow0", "slow1"]  # each sent once
    assert "silent for" not in log and "claim(s) released" not in log
    assert not re.search(r"dead_workers=[1-9]|stuck=[1-9]", log)
