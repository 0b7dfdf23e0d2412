"""Fault 5: bad input. Each case gets a clear error and a terminal state: a `failed` row with
its reason, or (for content the worker cannot or must not decode) a logged refusal with the
broker message acknowledged. Never a retry loop, never a worker crash: a good message sent
after all of them is delivered by the same worker.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kombu import Connection, Exchange, Producer

from tests.chaos.harness import SEND, Chaos, tally, wait_for
from tests.chaos.results import record
from tests.fakes.slack_server import running_fake_slack
from tests.simulator_server import running_simulator
from tests.support.services import run_cli
from tests.support.stack import phone
from worker.keys import DEAD_LETTERS
from worker.message_input import storable

pytestmark = pytest.mark.chaos

SLACKY = "<!channel> & <@U123>"
SURROGATE = "bad: surrogate \ud800"
MB = 1024 * 1024

#: label, positional args, keyword args, part of the recorded reason
RECORDED: list[tuple[str, list[Any], dict[str, Any], str]] = [
    ("invalid phone", [], {"phone": "12ab", "text": "bad: invalid phone"}, "phone"),
    (
        "non-string phone",
        [],
        {"phone": 5511999998888, "text": "bad: int phone"},
        "phone must be a non-empty string",
    ),
    ("empty text", [], {"phone": phone(1), "text": ""}, "text is empty"),
    ("blank text", [], {"phone": phone(1), "text": " \n "}, "text is empty"),
    ("text of a BOM and no-break spaces", [], {"phone": phone(1), "text": "\ufeff\u00a0"}, "empty"),
    (
        "4,097-character text",
        [],
        {"phone": phone(2), "text": "x" * 4097},
        "text has 4097 characters",
    ),
    ("1 MB text", [], {"phone": phone(3), "text": "y" * MB}, f"text has {MB} characters"),
    (
        "non-string contact id",
        [],
        {"phone": phone(4), "text": "bad: contact", "contact_id": 12345},
        "contact_id must be a string",
    ),
    (
        "unknown keyword argument",
        [],
        {"phone": phone(5), "text": "bad: kw", "priority": "high"},
        "unknown argument(s): priority",
    ),
    ("missing phone", [], {"text": "bad: no phone"}, "phone is required"),
    ("no arguments at all", [], {}, "phone is required"),
    (
        "too many positional arguments",
        [phone(6), "bad: positional", None, None, 60, "campaign", "extra"],
        {},
        "too many positional arguments",
    ),
    (
        "TTL zero",
        [],
        {"phone": phone(7), "text": "bad: ttl 0", "ttl_seconds": 0},
        "ttl_seconds must be positive",
    ),
    (
        "TTL in the past",
        [],
        {"phone": phone(7), "text": "bad: ttl -30", "ttl_seconds": -30},
        "ttl_seconds must be positive",
    ),
    (
        "TTL as a string",
        [],
        {"phone": phone(7), "text": "bad: ttl str", "ttl_seconds": "60"},
        "ttl_seconds must be an integer",
    ),
    (
        "NUL byte in text",
        [],
        {"phone": phone(8), "text": "bad: nul \x00 inside"},
        "text contains a NUL character",
    ),
    (
        "NUL byte in contact id",
        [],
        {"phone": phone(8), "text": "bad: nul contact", "contact_id": "doc\x00tor"},
        "contact_id contains a NUL character",
    ),
    (
        "NUL byte in idempotency key",
        [],
        {"phone": phone(8), "text": "bad: nul key", "idempotency_key": "k\x00"},
        "idempotency_key contains a NUL character",
    ),
]


def stored(text: object) -> object:
    """A text as a `failed` record keeps it (NUL and lone surrogates escaped)."""
    return storable(text) if isinstance(text, str) else text


def publish_raw(url: str, body: bytes, content_type: str) -> None:
    """A task message whose body is not what its content type says (protocol 2 headers)."""
    task_id = str(uuid.uuid4())
    with Connection(url) as conn:
        Producer(conn).publish(
            body,
            exchange=Exchange("celery", type="direct"),
            routing_key="celery",
            content_type=content_type,
            content_encoding="utf-8",
            headers={
                "lang": "py",
                "task": SEND,
                "id": task_id,
                "root_id": task_id,
                "parent_id": None,
                "group": None,
                "retries": 0,
                "eta": None,
                "expires": None,
                "argsrepr": "()",
                "kwargsrepr": "{}",
                "origin": "chaos",
            },
        )


def test_bad_input_fails_cleanly(chaos: Chaos) -> None:
    started = time.monotonic()
    store = chaos.instances()
    chaos.add_instances([SLACKY])
    with pytest.raises(ValueError, match="hourly cap must be a positive integer"):
        store.add("zero-cap", "5511900000001", 0, 10)
    with pytest.raises(ValueError, match="daily cap must be a positive integer"):
        store.add("negative-cap", "5511900000001", 10, -5)
    with pytest.raises(ValueError, match="hourly cap must be a positive integer"):
        store.update(SLACKY, hourly_cap=-1)
    with running_simulator([SLACKY], seed=7) as sim, running_fake_slack() as slack:
        env = chaos.env(sim.url, SLACK_BOT_TOKEN=slack.token, SLACK_API_URL=slack.base_url)
        worker = chaos.worker(env, concurrency=2)
        app = chaos.producer()
        for _, args, kwargs, _ in RECORDED:
            app.send_task(SEND, args=args, kwargs=kwargs)
        first = {"phone": phone(8), "text": "idempotent: first", "idempotency_key": "order-1"}
        app.send_task(SEND, kwargs=first)
        wait_for(lambda: chaos.count("sent") == 1, 60, "the keyed message sent")
        app.send_task(SEND, kwargs={**first, "text": "idempotent: other text"})
        app.send_task(SEND, kwargs=first)  # the same again: nothing new
        refused = {
            "pickle": lambda: app.send_task(
                SEND, kwargs={"phone": phone(9), "text": "pickled"}, serializer="pickle"
            ),
            "yaml": lambda: app.send_task(
                SEND, kwargs={"phone": phone(9), "text": "yaml"}, serializer="yaml"
            ),
            "malformed JSON": lambda: publish_raw(
                chaos.redis.url, b'[[], {"phone": ', "application/json"
            ),
            "unregistered task": lambda: app.send_task("zapdispatch.no_such_task", kwargs={}),
        }
        for publish in refused.values():
            publish()
        # A lone surrogate: depending on the JSON encoder kombu picked in the producer, the
        # body is either not UTF-8 (the envelope is a dead letter) or it decodes and intake
        # records it `failed` ("lone surrogate"). Either way it is recorded, never sent.
        app.send_task(SEND, kwargs={"phone": phone(9), "text": SURROGATE})
        app.send_task(SEND, kwargs={"phone": phone(10), "text": "good after the junk"})
        wait_for(lambda: chaos.count("sent") == 2, 60, "the good message after the junk")

        def recorded() -> int:  # failed rows, plus the surrogate if it was set aside
            extra = chaos.redis.client().llen(DEAD_LETTERS) - len(refused)
            return chaos.count("failed") + extra

        try:
            wait_for(lambda: recorded() == len(RECORDED) + 2, 30, "every bad one recorded")
        except AssertionError as exc:
            seen = [(r["text"][:40], r["state"], r["last_error"]) for r in chaos.rows()]
            raise AssertionError(
                f"{exc}; rows: {seen}; worker: {worker.output()[-3000:]}"
            ) from None
        time.sleep(1.0)  # the repeated keyed task, if it were to send again, would have by now
        # An instance name full of Slack control characters, in an alert.
        sim.configure_instance(SLACKY, state="close", disconnection_reason=401)
        app.send_task("zapdispatch.health_check", queue="zapdispatch.monitor")
        wait_for(lambda: bool(slack.texts()), 30, "the offline alert in Slack")
        listing = run_cli(env, "instances", "list", "--json")
        bad_cap = run_cli(
            env,
            "instances",
            "add",
            "cap-zero",
            "--phone",
            phone(11),
            "--hourly",
            "0",
            "--daily",
            "10",
        )
        bad_set = run_cli(env, "instances", "set", SLACKY, "--daily", "-5")
        received = sim.messages()
        queue_left = chaos.redis.client().llen("celery")
        unacked = chaos.redis.client().hlen("unacked")
        dead_letters = chaos.redis.client().llen(DEAD_LETTERS)
        alive = worker.proc.poll() is None
    rows = chaos.rows()
    log = worker.output()
    by_text = {r["text"]: r for r in rows}
    reasons = {
        label: (
            by_text.get(stored(kwargs.get("text", args[1] if len(args) > 1 else None))) or {}
        ).get("last_error")
        for label, args, kwargs, _ in RECORDED
    }
    row = tally(
        f"bad input ({len(RECORDED) + 1 + len(refused) + 2} kinds)",
        rows,
        received,
        notes=f"{len(RECORDED)} invalid calls + 1 reused idempotency key recorded `failed` with "
        f"the reason; {len(refused)} refused before decoding ({', '.join(refused)}): "
        f"logged and acked; 0 retries; the worker kept running and sent the next good "
        "message; caps ≤ 0 raise ValueError (CLI exit 2); a Slack-control-character "
        "instance name is stored verbatim and escaped in the alert",
        refused=len(refused),
        seconds=round(time.monotonic() - started, 1),
    )
    row.accepted += len(refused)
    record(row)
    # every recorded case: failed, with its reason, never sent
    for label, args, kwargs, reason in RECORDED:
        if "text" in kwargs and isinstance(kwargs["text"], str) and len(kwargs["text"]) > 4096:
            matches = [r for r in rows if r["last_error"] and reason in r["last_error"]]
            assert len(matches) == 1 and len(matches[0]["text"]) <= 4096, label
        elif label == "no arguments at all":
            assert sum(1 for r in rows if r["text"] == "None") == 1, label
        else:
            assert reason in (reasons[label] or ""), (label, reasons[label])
    assert all(
        r["state"] == "failed"
        for r in rows
        if r["text"] not in {"idempotent: first", "good after the junk"}
    )
    conflict = by_text["idempotent: other text"]
    assert conflict["state"] == "failed" and "already used" in conflict["last_error"]
    assert sorted(m["text"] for m in received) == ["good after the junk", "idempotent: first"]
    assert row.lost == 0 and row.duplicated == 0
    # refused before decoding: set aside as dead letters, logged once, acked, never redelivered
    assert "Refusing to deserialize untrusted content of type pickle" in log
    assert "Refusing to deserialize untrusted content of type yaml" in log
    assert "unregistered task 'zapdispatch.no_such_task'" in log
    assert "cannot decode the message body" in log
    surrogate = by_text.get(stored(SURROGATE))
    if surrogate is None:  # set aside before decoding
        assert dead_letters == len(refused) + 1
    else:
        assert surrogate["state"] == "failed" and "lone surrogate" in surrogate["last_error"]
        assert dead_letters == len(refused)
    assert log.count("set aside as a dead letter") == dead_letters
    assert queue_left == 0 and unacked == 0
    # no retry loop, no crash
    assert "Retry in" not in log
    assert alive and "WorkerLostError" not in log and "exited with" not in log
    # instance names verbatim in the store and the CLI, escaped in Slack
    assert store.get(SLACKY).name == SLACKY and store.get(SLACKY).hourly_cap == 10_000
    assert listing.returncode == 0 and any(
        i["name"] == SLACKY for i in __import__("json").loads(listing.stdout)
    ), listing.stderr
    alert = next(t for t in slack.texts() if "offline" in t)
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in alert and "<@U123>" not in alert, alert
    # caps ≤ 0 from the CLI: exit status 2, nothing stored
    assert bad_cap.returncode == 2 and bad_set.returncode == 2, (bad_cap.stderr, bad_set.stderr)
    assert [i.name for i in store.all()] == [SLACKY]
