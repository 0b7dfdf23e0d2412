"""Evolution webhooks end to end: the simulator posts them to a real `zapdispatch api`
process, a real `celery -A worker worker` routes and sends.

- a number drops (webhook only: no health check runs) and the next message to a contact
  sticky on it leaves from another number; webhook → send timed over 20 trials;
- 100 sends get their receipts; a number that accepts and never delivers raises its alert
  once and resolves when receipts resume;
- a reply pins the contact; `PARE` opts it out and nothing more is sent to it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.simulator_server import SimulatorHandle, running_simulator
from tests.support.processes import Launcher, producer, service_env, start_worker, wait_until
from tests.support.services import free_port

pytestmark = pytest.mark.e2e

TOKEN = "hook-token-0123456789abcdef0123456789"
INSTANCES = ["inst-a", "inst-b", "inst-c"]
TRIALS = 20


@dataclass
class Deployment:
    """The running processes (API, worker, simulator) and the handles a test drives."""

    engine: Engine
    sim: SimulatorHandle
    api_url: str
    send: Callable[..., None]

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def execute(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(sql))

    def status(self, name: str) -> str:
        return str(self.query("SELECT status FROM instances WHERE name = :n", n=name)[0][0])

    def messages_of(self, contact: str) -> list[Any]:
        return self.query(
            "SELECT state, instance, receipt, delivered_at, read_at, last_error FROM messages "
            "WHERE contact_id = :c ORDER BY created_at",
            c=contact,
        )


def phone(i: int) -> str:
    return f"+55 11 97{i:03d}-{i:04d}"


def digits(i: int) -> str:
    return f"551197{i:03d}{i:04d}"


@pytest.fixture
def stack(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: object,
    launcher: Launcher,
) -> Iterator[Deployment]:
    store = InstanceStore(make_session_factory(engine))
    for name in INSTANCES:
        store.add(name, "5511900000000", 1000, 10000, status=InstanceStatus.CONNECTED)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    with running_simulator(INSTANCES) as sim:
        env = service_env(
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            EVOLUTION_API_URL=sim.url,
            WEBHOOK_TOKEN=TOKEN,
            UNDELIVERED_GRACE_MINUTES="0",
            UNDELIVERED_MIN_SENDS="4",
        )
        env.pop("API_TOKEN", None)
        launcher.api(env, port)
        sim.configure(
            webhook_url=f"{api_url}/webhooks/evolution",
            webhook_headers={"Authorization": f"Bearer {TOKEN}"},
        )
        start_worker(launcher.celery, env, concurrency=2)
        app = producer(redis_url)

        def send(i: int, body: str = "oi", contact: str | None = None) -> None:
            kwargs = {"phone": phone(i), "text": body, "contact_id": contact or f"doc-{i}"}
            app.send_task("zapdispatch.send_message", kwargs=kwargs)

        yield Deployment(engine, sim, api_url, send)


def sent_on(stack: Deployment, contact: str, count: int) -> str:
    """Wait until `contact` has `count` sent messages; the instance of the last one."""
    wait_until(
        lambda: sum(m.state == "sent" for m in stack.messages_of(contact)) >= count,
        30,
        f"{count} messages to {contact} sent",
    )
    return str(stack.messages_of(contact)[-1].instance)


def received_at(stack: Deployment, number: str, count: int) -> tuple[str, float]:
    """Wait until the simulator got `count` messages for `number`: (instance, unix seconds)."""
    wait_until(
        lambda: len([m for m in stack.sim.messages() if m["number"] == number]) >= count,
        30,
        f"message {count} to {number}",
    )
    last = [m for m in stack.sim.messages() if m["number"] == number][-1]
    return str(last["instance"]), float(last["received_at"])


def dropped_at(stack: Deployment, name: str) -> float:
    """Wait (polling every 10 ms) until the webhook recorded `name` disconnected; when it did
    (the API's clock: the Redis server's, on this machine)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = stack.query(
            "SELECT status, status_changed_at FROM instances WHERE name = :n", n=name
        )
        if rows[0][0] == "disconnected":
            return float(rows[0][1].timestamp())
        time.sleep(0.01)
    raise AssertionError(f"{name} not recorded disconnected")


def test_a_dropped_number_is_avoided_within_2_s_of_its_webhook(stack: Deployment) -> None:
    refused = httpx.post(f"{stack.api_url}/webhooks/evolution", json={"event": "x"})
    assert refused.status_code == 401
    recorded, total = [], []
    for i in range(TRIALS):
        stack.send(i)
        sticky = sent_on(stack, f"doc-{i}", 1)
        started = time.time()
        stack.sim.configure_instance(sticky, state="close", disconnection_reason=401)
        recorded.append(dropped_at(stack, sticky) - started)
        stack.send(i, "depois")
        instance, at = received_at(stack, digits(i), 2)
        assert instance != sticky, f"trial {i}: sent from the dropped {sticky}"
        total.append(at - started)
        stack.sim.configure_instance(sticky, state="open")
        wait_until(lambda s=sticky: stack.status(s) == "connected", 10, f"{sticky} back")
    print(
        f"\nwebhook → status recorded: p50 {statistics.median(recorded) * 1000:.0f} ms, "
        f"max {max(recorded) * 1000:.0f} ms; webhook → next message sent from another "
        f"number: p50 {statistics.median(total) * 1000:.0f} ms, max {max(total) * 1000:.0f} ms "
        f"({TRIALS} trials)"
    )
    assert max(total) <= 2.0


def test_receipts_reach_every_message_and_an_undelivering_number_alerts_once(
    stack: Deployment, redis_url: str
) -> None:
    stack.sim.configure(receipt_delays_ms=[20, 60, 120])
    for i in range(100):
        stack.send(i)
    wait_until(
        lambda: (
            stack.query(
                "SELECT count(*) FROM messages WHERE receipt = 'read' AND delivered_at IS NOT NULL "
                "AND read_at IS NOT NULL"
            )[0][0]
            == 100
        ),
        90,
        "100 messages read",
    )
    rows = {
        r[0]: r[1] for r in stack.query("SELECT instance, count(*) FROM messages GROUP BY instance")
    }
    assert sum(rows.values()) == 100

    # inst-c accepts and never delivers: its next sends only get SERVER_ACK.
    stack.execute("UPDATE messages SET sent_at = sent_at - interval '1 hour'")  # out of window
    stack.sim.configure_instance("inst-c", never_delivers=True)
    on_c = [i for i in range(100) if stack.messages_of(f"doc-{i}")[0].instance == "inst-c"][:6]
    others = [i for i in range(100) if i not in on_c][:6]
    for i in on_c + others:
        stack.send(i, "de novo")
    for i in on_c + others:
        sent_on(stack, f"doc-{i}", 2)
    wait_until(
        lambda: (
            stack.query(
                "SELECT count(*) FROM messages WHERE text = 'de novo' AND instance <> 'inst-c' "
                "AND receipt = 'read'"
            )[0][0]
            == len(others)
        ),
        30,
        "the other numbers' receipts",
    )
    app = producer(redis_url)

    def alerts() -> list[tuple[str, bool]]:
        rows = stack.query(
            "SELECT subject, resolved_at IS NOT NULL FROM alerts "
            "WHERE kind = 'not_delivering' ORDER BY id"
        )
        return [(str(r[0]), bool(r[1])) for r in rows]

    def health_check() -> None:
        app.send_task("zapdispatch.health_check", queue="zapdispatch.monitor")

    health_check()
    wait_until(lambda: alerts() == [("inst-c", False)], 30, "the not-delivering alert")
    health_check()
    time.sleep(2)  # a second run must not open another
    assert alerts() == [("inst-c", False)]

    stack.sim.configure_instance("inst-c", never_delivers=False)
    for i in on_c[:1]:
        stack.send(i, "e agora")
    wait_until(
        lambda: (
            stack.query(
                "SELECT count(*) FROM messages WHERE text = 'e agora' AND receipt = 'read'"
            )[0][0]
            == 1
        ),
        30,
        "inst-c delivering again",
    )
    health_check()
    wait_until(lambda: alerts() == [("inst-c", True)], 30, "the alert resolved")


def test_a_reply_pins_the_contact_and_pare_opts_it_out(stack: Deployment) -> None:
    stack.send(1)
    sticky = sent_on(stack, "doc-1", 1)
    other = next(n for n in INSTANCES if n != sticky)
    stack.sim.inbound(other, digits(1), "Bom dia, doutor aqui")
    wait_until(
        lambda: (
            stack.query("SELECT preferred_instance FROM contacts WHERE id = 'doc-1'")[0][0] == other
        ),
        10,
        "the reply pinning doc-1",
    )
    stack.send(1, "segunda")
    assert received_at(stack, digits(1), 2)[0] == other

    stack.sim.inbound(other, digits(1), " Paré ")
    wait_until(
        lambda: stack.query("SELECT opted_out_at IS NOT NULL FROM contacts WHERE id = 'doc-1'")[0][
            0
        ],
        10,
        "doc-1 opted out",
    )
    time.sleep(1.2)  # every worker's opt-out set is at most 1 s old
    stack.send(1, "terceira")
    stack.send(1, "quarta", contact="someone-else")  # same phone, another contact id
    wait_until(
        lambda: (
            stack.query(
                "SELECT count(*) FROM messages WHERE state = 'failed' "
                "AND last_error LIKE 'opted out%'"
            )[0][0]
            == 2
        ),
        30,
        "both refused",
    )
    assert len([m for m in stack.sim.messages() if m["number"] == digits(1)]) == 2
