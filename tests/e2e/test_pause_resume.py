"""Pause and resume through two real worker processes: sending stops in every worker
within 2 s of `pause`, nothing paused is attempted or lost, and `resume` sends it all."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from config import Settings
from models.enums import InstanceStatus
from tests.simulator_server import running_simulator
from tests.support.processes import ServiceProcess, producer, service_env, start_worker, wait_until
from worker.celery_app import MONITOR_QUEUE, SWEEP
from worker.controls import Controls
from worker.resources import build_resources

pytestmark = pytest.mark.e2e

INSTANCES = ["inst-a", "inst-b"]
RATE_PER_SECOND = 10
PROPAGATION_LIMIT_SECONDS = 2.0


def states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state"))
        return {str(state): int(n) for state, n in rows}


def sent_after(engine: Engine, unix_seconds: float) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM messages WHERE sent_at > to_timestamp(:t)"),
                {"t": unix_seconds},
            ).scalar_one()
        )


def last_sent(engine: Engine) -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(text("SELECT extract(epoch FROM max(sent_at)) FROM messages")).scalar_one()
        )


def test_pause_stops_every_worker_within_2_s_and_resume_sends_everything(
    engine: Engine,
    settings: Settings,
    database_url: str,
    redis_url: str,
    redis_client: object,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    with running_simulator(INSTANCES) as sim:
        res = build_resources(settings.model_copy(update={"evolution_api_url": sim.url}))
        for name in INSTANCES:
            res.instances.add(
                name, "5511900000000", 10_000, 100_000, status=InstanceStatus.CONNECTED
            )
        controls = Controls(res.pauses, res.instances, res.limiter.now)
        env = service_env(DATABASE_URL=database_url, REDIS_URL=redis_url, EVOLUTION_API_URL=sim.url)
        for n in range(2):
            start_worker(start_celery, env, pool="threads", concurrency=4, name=f"w{n}")
        app = producer(redis_url)
        published = [0]
        stop = threading.Event()

        def produce() -> None:
            while not stop.is_set():
                i = published[0]
                app.send_task(
                    "zapdispatch.send_message",
                    kwargs={"phone": f"+55 11 97{i:03d}-{i:04d}", "text": f"m{i}"},
                )
                published[0] += 1
                time.sleep(1 / RATE_PER_SECOND)

        thread = threading.Thread(target=produce)
        thread.start()
        try:
            wait_until(lambda: states(engine).get("sent", 0) >= 20, 60, "20 sends before pause")
            paused_at = time.time()
            controls.pause()
            time.sleep(PROPAGATION_LIMIT_SECONDS + 3)  # keep producing while paused
        finally:
            stop.set()
            thread.join()
        total = published[0]
        wait_until(lambda: sum(states(engine).values()) == total, 30, "every message recorded")
        late = sent_after(engine, paused_at + PROPAGATION_LIMIT_SECONDS)
        print(f"last send {last_sent(engine) - paused_at:.2f} s after pause; {states(engine)}")
        during = states(engine)
        assert late == 0, f"{late} messages sent more than 2 s after pause"
        assert during.get("waiting", 0) >= 3 * RATE_PER_SECOND, during
        assert set(during) <= {"sent", "waiting"}, during
        assert len(sim.messages()) == during["sent"]  # no attempt of a paused message

        resumed = controls.resume()
        assert resumed["woken"] == during["waiting"]
        app.send_task(SWEEP, queue=MONITOR_QUEUE)
        wait_until(lambda: states(engine) == {"sent": total}, 60, "everything sent after resume")
        assert len(sim.messages()) == total
        res.close()
