"""No broker message crashes a worker: each poison goes to the dead-letter list, with its
reason, acknowledged, logged once with phones masked; good messages keep flowing through
the same real `celery -A worker worker`, and through it again after a restart."""

from __future__ import annotations

import base64
import json
import pickle
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from kombu import Connection
from sqlalchemy import Engine, text

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from tests.simulator_server import running_simulator
from tests.support.processes import ServiceProcess, producer, service_env, start_worker, wait_until
from tests.support.services import run_cli
from worker.broker.deadletters import DeadLetterStore
from worker.broker.transport import CrashSafeTransport
from worker.keys import DEAD_LETTERS

pytestmark = pytest.mark.e2e

SEND = "zapdispatch.send_message"
PHONE = "5511999998888"
MASKED = "5511*******88"


def headers(task: str = SEND, **changes: Any) -> dict[str, Any]:
    task_id = str(uuid.uuid4())
    base = {
        "lang": "py",
        "task": task,
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "argsrepr": "()",
        "kwargsrepr": "{}",
        "origin": "poison-test",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v != "<drop>"}


def envelope(
    body: bytes,
    head: dict[str, Any] | None,
    content_type: str = "application/json",
    **properties: Any,
) -> str:
    """A kombu envelope as `Producer.publish` writes it on the Redis list."""
    props: dict[str, Any] = {
        "correlation_id": str(uuid.uuid4()),
        "delivery_mode": 2,
        "delivery_info": {"exchange": "celery", "routing_key": "celery"},
        "priority": 0,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    props.update(properties)
    return json.dumps(
        {
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8" if content_type == "application/json" else "binary",
            "content-type": content_type,
            "headers": head,
            "properties": props,
        }
    )


def task_body(*args: Any, **kwargs: Any) -> bytes:
    return json.dumps([list(args), kwargs, {}]).encode()


GOOD_BODY = task_body(phone=PHONE, text="a good one")

#: label, raw text pushed on the `celery` list, part of the dead-letter reason
POISONS: list[tuple[str, str, str]] = [
    ("not json", "not json", "not JSON"),
    ("a JSON list", "[1,2,3]", "no properties object"),
    ("a body without envelope", '{"body":"abc"}', "no properties object"),
    ("a JSON string", '"hello"', "not a JSON object"),
    ("properties null", json.dumps({"body": "", "properties": None}), "no properties object"),
    (
        "no exchange",
        envelope(GOOD_BODY, headers(), delivery_info={"routing_key": "celery"}),
        "exchange or routing_key",
    ),
    ("no delivery tag", envelope(GOOD_BODY, headers(), delivery_tag=None), "delivery_tag"),
    ("headers a string", envelope(GOOD_BODY, "task"), "headers is not an object"),  # type: ignore[arg-type]
    (
        "body not base64",
        json.dumps({**json.loads(envelope(GOOD_BODY, headers())), "body": "%%%" + PHONE + "%%%"}),
        "delivery failed",
    ),
    (
        "a dict body",
        envelope(json.dumps({"phone": PHONE, "text": "x"}).encode(), headers()),
        "not [args, kwargs, embed]",
    ),
    ("[[]] as body", envelope(b"[[]]", headers()), "not [args, kwargs, embed]"),
    ("a 2-item body", envelope(b"[[], {}]", headers()), "not [args, kwargs, embed]"),
    ("kwargs a list", envelope(b"[[], [], {}]", headers()), "kwargs is not an object"),
    ("args a dict", envelope(b'[{"phone": 1}, {}, {}]', headers()), "args is not a list"),
    ("no task id", envelope(GOOD_BODY, headers(id="<drop>")), "no id string"),
    ("headers a list", envelope(GOOD_BODY, []), "no task name"),  # type: ignore[arg-type]
    ("malformed JSON body", envelope(b'[[], {"phone": "' + PHONE.encode(), headers()), "decode"),
    (
        "pickle",
        envelope(
            pickle.dumps(((), {"phone": PHONE, "text": "pickled"}, {})),
            headers(),
            content_type="application/x-python-serialize",
        ),
        "untrusted content",
    ),
    ("unregistered task", envelope(GOOD_BODY, headers(task="zapdispatch.nope")), "unregistered"),
    ("no task name", envelope(GOOD_BODY, {"id": "x"}), "no task name"),
    ("bad eta", envelope(GOOD_BODY, headers(eta="tomorrow")), "invalid task message"),
]

#: `unacked` entries (hash value) that cannot be restored, and the reason.
BAD_UNACKED: list[tuple[str, str, str]] = [
    ("poison-tag-1", "not json", "not JSON"),
    ("poison-tag-2", "[1, 2]", "not [message, exchange, routing_key]"),
    ("poison-tag-3", json.dumps([{"properties": None}, "celery", "celery"]), "invalid broker"),
]


def restore_expired_unacked(url: str) -> None:
    """What every worker's consumer does every 100 s: restore `unacked` entries older than
    the visibility timeout (kombu's QoS.restore_visible), through our transport."""
    with Connection(url, transport=CrashSafeTransport) as conn:
        conn.default_channel.qos.restore_visible(num=100)


def sent(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT count(*) FROM messages WHERE state = 'sent'")).scalar_one()
        )


def test_every_poison_is_set_aside_and_the_worker_keeps_sending(
    engine: Engine,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    InstanceStore(make_session_factory(engine)).add(
        "inst-a", "5511900000000", 1000, 10000, status=InstanceStatus.CONNECTED
    )
    for _, raw, _ in POISONS:
        redis_client.lpush("celery", raw)
    with running_simulator(["inst-a"]) as sim:
        env = service_env(DATABASE_URL=database_url, REDIS_URL=redis_url, EVOLUTION_API_URL=sim.url)
        worker = start_worker(start_celery, env, concurrency=2)
        # `unacked` entries older than the visibility timeout: one restorable (then poison
        # for the consumer), the others not restorable at all.
        restorable = envelope(b"[[]]", headers())
        tag = json.loads(restorable)["properties"]["delivery_tag"]
        redis_client.hset("unacked", tag, json.dumps([json.loads(restorable), "celery", "celery"]))
        redis_client.zadd("unacked_index", {tag: 1.0})
        for bad_tag, value, _ in BAD_UNACKED:
            redis_client.hset("unacked", bad_tag, value)
            redis_client.zadd("unacked_index", {bad_tag: 1.0})
        restore_expired_unacked(redis_url)
        app = producer(redis_url)
        app.send_task(SEND, kwargs={"phone": "+55 11 98888-0001", "text": "after the poison"})
        wait_until(lambda: sent(engine) == 1, 60, "the good message after the poison")
        expected = len(POISONS) + len(BAD_UNACKED) + 1
        store = DeadLetterStore(redis_client)
        wait_until(lambda: store.count() == expected, 30, f"{expected} dead letters")
        assert worker.proc.poll() is None, worker.output()[-3000:]
        worker.stop()
        worker = start_worker(start_celery, env, concurrency=2, name="worker-again")
        app.send_task(SEND, kwargs={"phone": "+55 11 98888-0002", "text": "after a restart"})
        wait_until(lambda: sent(engine) == 2, 60, "the good message after the restart")
        assert worker.proc.poll() is None
        listing = run_cli(env, "deadletters", "list", "--json")
        status = run_cli(env, "status", "--json")
    assert store.count() == expected  # nothing came back after the restart
    assert redis_client.llen("celery") == 0
    assert redis_client.hlen("unacked") == 0
    letters = store.newest(100)
    reasons = [letter.reason for letter in letters]
    for label, _, reason in POISONS + [(t, v, r) for t, v, r in BAD_UNACKED]:
        assert any(reason in r for r in reasons), (label, reason, reasons)
    assert sum("not [args, kwargs, embed]" in r for r in reasons) == 4  # 3 + the restored one
    assert {letter.source for letter in letters} == {"fetch", "consumer", "restore"}
    assert all(letter.at > 1.7e9 for letter in letters)
    raw_of = {letter.message for letter in letters}
    assert "not json" in raw_of and "[1,2,3]" in raw_of
    assert listing.returncode == 0, listing.stderr
    listed = json.loads(listing.stdout)
    assert len(listed) == expected
    assert PHONE not in listing.stdout
    assert json.loads(status.stdout)["dead_letters"] == expected
    log = "".join(p.read_text() for p in worker.log_path.parent.glob("worker*.log"))
    assert "Unrecoverable error" not in log
    assert PHONE not in log, [line for line in log.splitlines() if PHONE in line]
    # Once each: the unrestorable `unacked` entries were logged by this test's restore.
    assert log.count("set aside as a dead letter") == expected - len(BAD_UNACKED)
    assert run_cli(env, "deadletters", "purge").returncode == 0
    assert redis_client.llen(DEAD_LETTERS) == 0
