"""A producer's messages through a real Celery worker process and the Evolution simulator."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.simulator_server import running_simulator
from tests.support.processes import (
    ServiceProcess,
    producer,
    service_env,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.e2e

INSTANCES = ["inst-a", "inst-b", "inst-c"]


def states(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state"))
        return {str(state): int(n) for state, n in rows}


def test_ten_contacts_three_messages_each_stick_to_one_instance_and_spread(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: object,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    store = InstanceStore(make_session_factory(engine))
    for name in INSTANCES:
        store.add(name, "5511900000000", 1000, 10000, status=InstanceStatus.CONNECTED)
    with running_simulator(INSTANCES) as sim:
        env = service_env(DATABASE_URL=database_url, REDIS_URL=redis_url, EVOLUTION_API_URL=sim.url)
        start_worker(start_celery, env, concurrency=4)
        app = producer(redis_url)
        for round_ in range(3):
            for contact in range(10):
                app.send_task(
                    "zapdispatch.send_message",
                    kwargs={
                        "phone": f"+55 11 98{contact:03d}-{contact:04d}",
                        "text": f"round {round_} for doctor {contact}",
                        "contact_id": f"doctor-{contact}",
                    },
                )
        wait_until(lambda: states(engine).get("sent", 0) == 30, 60, "30 messages sent")
        received = sim.messages()
    assert len(received) == 30
    instances_of: dict[str, set[str]] = defaultdict(set)
    for record in received:
        instances_of[record["number"]].add(record["instance"])
    assert len(instances_of) == 10
    assert all(len(used) == 1 for used in instances_of.values()), instances_of
    contacts_per_instance: dict[str, int] = defaultdict(int)
    for used in instances_of.values():
        contacts_per_instance[next(iter(used))] += 1
    assert max(contacts_per_instance.values()) <= 5, contacts_per_instance
    assert states(engine) == {"sent": 30}
