"""The sending policy through a real `celery -A worker worker` process and the Evolution
simulator, with the shared test clock: the warm-up ramp day by day, quiet hours in the
recipient's time, the not-on-WhatsApp memory, and a cancelled campaign."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text

from models.campaign_store import CampaignStore
from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from models.views import to_datetime
from tests.simulator_server import SimulatorHandle, running_simulator
from tests.support.processes import ServiceProcess, producer, service_env, start_worker, wait_until
from worker.celery_app import MONITOR_QUEUE, SWEEP
from worker.clock import set_test_clock

pytestmark = pytest.mark.e2e

#: 2026-11-23 10:00:00 in São Paulo (13:00 UTC).
T0 = 1_795_438_800.0
HOUR, DAY = 3600.0, 86_400.0


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state"))
        return {str(state): int(n) for state, n in rows}


@contextmanager
def worker_with(
    engine: Engine,
    database_url: str,
    redis_url: str,
    start_celery: Callable[..., ServiceProcess],
    caps: tuple[int, int] = (100, 1000),
    **env: str,
) -> Iterator[tuple[SimulatorHandle, Any, InstanceStore]]:
    store = InstanceStore(make_session_factory(engine))
    store.add("inst-a", "5511900000000", *caps, status=InstanceStatus.CONNECTED)
    with running_simulator(["inst-a"]) as sim:
        values = service_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            EVOLUTION_API_URL=sim.url,
            TEST_CLOCK_ENABLED="1",
            REQUEUE_JITTER_SECONDS="1",
            **env,
        )
        start_worker(start_celery, values, pool="threads", concurrency=4)
        yield sim, producer(redis_url), store


def send(app: Any, phone: str, body: str, **more: Any) -> None:
    app.send_task("zapdispatch.send_message", kwargs={"phone": phone, "text": body, **more})


def test_a_warming_number_sends_exactly_its_ramp_on_day_1_and_day_2(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    set_test_clock(redis_client, T0)
    with worker_with(
        engine, database_url, redis_url, start_celery, (100, 100), WARMUP_SCHEDULE="5,8"
    ) as (sim, app, store):
        store.restart_warmup("inst-a", to_datetime(T0))
        for i in range(12):
            send(app, f"+55 11 97{i:03d}-{i:04d}", f"day1 {i}", ttl_seconds=3 * 86_400)
        wait_until(lambda: counts(engine) == {"sent": 5, "waiting": 7}, 60, "5 sent on day 1")
        set_test_clock(redis_client, T0 + DAY)  # 10:00 the next local day
        app.send_task(SWEEP, queue=MONITOR_QUEUE)
        for i in range(12, 20):
            send(app, f"+55 11 97{i:03d}-{i:04d}", f"day2 {i}", ttl_seconds=3 * 86_400)
        wait_until(lambda: counts(engine).get("sent") == 13, 60, "8 more sent on day 2")
        wait_until(lambda: sum(counts(engine).values()) == 20, 30, "all 20 recorded")
        assert counts(engine) == {"sent": 13, "waiting": 7}
        assert len(sim.messages()) == 13


def test_quiet_hours_park_a_sao_paulo_night_and_send_a_los_angeles_evening(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    set_test_clock(redis_client, T0 + 13 * HOUR)  # 23:00 in São Paulo, 18:00 in Los Angeles
    with worker_with(engine, database_url, redis_url, start_celery, QUIET_HOURS="22:00-08:00") as (
        sim,
        app,
        _,
    ):
        send(app, "+55 11 99999-8888", "boa noite?")
        send(app, "+1 415 555 0100", "good evening")
        wait_until(lambda: counts(engine) == {"sent": 1, "waiting": 1}, 60, "1 sent, 1 parked")
        assert [m["number"] for m in sim.messages()] == ["14155550100"]
        set_test_clock(redis_client, T0 + 22 * HOUR + 901)  # past 08:00 and its spread
        app.send_task(SWEEP, queue=MONITOR_QUEUE)
        wait_until(lambda: counts(engine) == {"sent": 2}, 60, "sent in the morning")


def test_a_number_not_on_whatsapp_is_asked_once(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    set_test_clock(redis_client, T0)
    with worker_with(engine, database_url, redis_url, start_celery) as (sim, app, _):
        sim.configure(not_on_whatsapp=["5511900070007"])
        send(app, "+55 11 90007-0007", "first")
        wait_until(lambda: counts(engine) == {"failed": 1}, 60, "the first fails")
        for i in range(3):
            send(app, "+55 11 90007-0007", f"again {i}")
        send(app, "+55 11 90001-0001", "someone else")
        wait_until(lambda: counts(engine) == {"failed": 4, "sent": 1}, 60, "3 more failed")
        assert sim.stats()["total_requests"] == 2  # the ghost once, the other number once


def test_a_cancelled_campaign_sends_nothing_more(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    set_test_clock(redis_client, T0 + HOUR - 5)  # 10:59:55: the next hour is a countdown away
    with worker_with(engine, database_url, redis_url, start_celery, (2, 1000)) as (sim, app, _):
        for i in range(10):
            send(app, f"+55 11 97{i:03d}-{i:04d}", f"nov {i}", campaign="nov")
        send(app, "+55 11 96000-0000", "other campaign", campaign="dec")
        wait_until(lambda: counts(engine) == {"sent": 2, "queued": 9}, 60, "2 sent, 9 counted down")
        cancelled = CampaignStore(make_session_factory(engine)).cancel("nov", to_datetime(T0))
        assert cancelled == 8
        set_test_clock(redis_client, T0 + HOUR + 10)  # the countdowns fire into a new hour
        wait_until(lambda: counts(engine).get("sent") == 3, 60, "the other campaign sent")
        assert counts(engine) == {"sent": 3, "cancelled": 8}
        assert [m["text"] for m in sim.messages()].count("other campaign") == 1
        assert len(sim.messages()) == 3
