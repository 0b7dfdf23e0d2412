"""The typing delay reaches the Evolution simulator through a real worker: an integer in
range per send, and the send answers only after it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.simulator_server import running_simulator
from tests.support.processes import ServiceProcess, producer, service_env, start_worker, wait_until

pytestmark = pytest.mark.e2e


def sent(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM messages WHERE state = 'sent'")).scalar_one()
        )


def test_delay_reaches_evolution_as_an_integer_in_range(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: object,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    InstanceStore(make_session_factory(engine)).add(
        "inst-a", "5511900000000", 1000, 10_000, status=InstanceStatus.CONNECTED
    )
    with running_simulator(["inst-a"]) as sim:
        env = service_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            EVOLUTION_API_URL=sim.url,
            TYPING_DELAY_MS="1000-3000",
        )
        start_worker(start_celery, env, pool="threads", concurrency=8)
        app = producer(redis_url)
        started = time.monotonic()
        for i in range(8):
            app.send_task(
                "zapdispatch.send_message",
                kwargs={"phone": f"+55 11 96{i:03d}-{i:04d}", "text": f"m{i}"},
            )
        wait_until(lambda: sent(engine) == 8, 60, "8 messages sent")
        elapsed = time.monotonic() - started
        delays = sim.delays()
    assert len(delays) == 8 and all(1000 <= d <= 3000 for d in delays.values()), delays
    assert elapsed >= 1.0  # Evolution answered only after the delay
