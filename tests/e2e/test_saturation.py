"""Caps under real concurrency: 8 worker slots, caps 5/10/15, 100 messages in one hour."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import redis
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.simulator_server import running_simulator
from tests.support.evolution import T0
from tests.support.processes import ServiceProcess, producer, service_env, start_worker, wait_until
from worker.clock import set_test_clock

pytestmark = pytest.mark.e2e

CAPS = {"inst-a": 5, "inst-b": 10, "inst-c": 15}
JITTER_SECONDS = 5.0


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state"))
        return {str(s): int(n) for s, n in rows}


def not_befores(engine: Engine) -> list[datetime]:
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text("SELECT not_before FROM messages WHERE state = 'waiting' ORDER BY not_before")
            )
        )


def test_hundred_messages_fill_every_cap_exactly_then_the_next_hour_sends_thirty_more(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    store = InstanceStore(make_session_factory(engine))
    for name, cap in CAPS.items():
        store.add(name, "5511900000000", cap, 10_000, status=InstanceStatus.CONNECTED)
    set_test_clock(redis_client, T0)  # 10:00 in São Paulo
    with running_simulator(list(CAPS)) as sim:
        env = service_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            EVOLUTION_API_URL=sim.url,
            TEST_CLOCK_ENABLED="1",
            REQUEUE_JITTER_SECONDS=str(JITTER_SECONDS),
        )
        for n in range(2):
            start_worker(start_celery, env, concurrency=4, name=f"w{n}")
        app = producer(redis_url)
        for i in range(100):
            app.send_task(
                "zapdispatch.send_message",
                kwargs={
                    "phone": f"+55 11 97{i:03d}-{i:04d}",
                    "text": f"hello {i}",
                    "contact_id": f"doctor-{i}",
                },
            )
        wait_until(
            lambda: counts(engine) == {"sent": 30, "waiting": 70}, 90, "30 sent and 70 waiting"
        )
        assert Counter(m["instance"] for m in sim.messages()) == CAPS

        boundaries = Counter(
            nb.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
            for nb in not_befores(engine)
        )
        eleven, noon, one = (datetime(2026, 11, 23, h, 0, tzinfo=UTC) for h in (14, 15, 16))
        assert boundaries == {eleven: 30, noon: 30, one: 10}
        assert all(
            (nb - eleven).total_seconds() % 3600 <= JITTER_SECONDS for nb in not_befores(engine)
        )

        set_test_clock(redis_client, T0 + 3600 + JITTER_SECONDS + 1)
        app.send_task("zapdispatch.sweep")
        wait_until(lambda: counts(engine).get("sent") == 60, 90, "60 sent")
        assert counts(engine) == {"sent": 60, "waiting": 40}
        hour_two = Counter(m["instance"] for m in sim.messages())
    assert hour_two == {name: 2 * cap for name, cap in CAPS.items()}
