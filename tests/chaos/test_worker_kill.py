"""Fault 1: the worker is SIGKILLed twice in the middle of 500 messages, and restarted.

Every message must end `sent`, `failed` or `expired`. A duplicate may only come from a
message that was `sending` when a kill landed (claimed, HTTP call possibly made, `sent` not
yet committed): we snapshot those right after each kill and check every duplicate is one.
"""

from __future__ import annotations

import time

import pytest

from tests.chaos.harness import SEND, Chaos, digits, duplicates, tally, wait_for
from tests.chaos.results import record
from tests.simulator_server import running_simulator
from tests.support.stack import phone

pytestmark = pytest.mark.chaos

INSTANCES = ["inst-a", "inst-b", "inst-c"]
MESSAGES = 500
CONTACTS = 100
KILL_AT_SENT = (150, 330)
CONCURRENCY = 4
#: A dead worker's prefetched tasks come back when the next worker starts, or at kombu's
#: next periodic restore of unacked messages (every 100 s: a 10 s timer acting every 10th
#: time), whichever finds them past the visibility timeout first.
TERMINAL_WITHIN_SECONDS = 240


def test_worker_killed_twice_mid_batch(chaos: Chaos) -> None:
    chaos.add_instances(INSTANCES)
    started = time.monotonic()
    with running_simulator(INSTANCES, seed=6) as sim:
        for name, latency in zip(INSTANCES, (20, 35, 50), strict=True):
            sim.configure_instance(name, latency_ms=latency)
        env = chaos.env(sim.url)
        chaos.beat(env)
        worker = chaos.worker(env, concurrency=CONCURRENCY, name="worker")
        app = chaos.producer()
        texts = [f"kill-test message {i}" for i in range(MESSAGES)]
        for i, body in enumerate(texts):
            contact = i % CONTACTS
            app.send_task(
                SEND,
                kwargs={"phone": phone(contact), "text": body, "contact_id": f"doctor-{contact}"},
            )
        in_window: set[str] = set()
        timeline = {"published": round(time.monotonic() - started, 1)}
        for kill, threshold in enumerate(KILL_AT_SENT, start=1):
            wait_for(lambda t=threshold: chaos.count("sent") >= t, 90, f"{threshold} sent")
            timeline[f"kill {kill}"] = round(time.monotonic() - started, 1)
            worker.kill()
            in_window |= {
                r[0] for r in chaos.query("SELECT text FROM messages WHERE state = 'sending'")
            }
            # Unacked tasks of a dead worker come back once the visibility timeout passed
            # (kombu restores them when the next worker starts polling).
            time.sleep(float(env["BROKER_VISIBILITY_TIMEOUT_SECONDS"]))
            worker = chaos.worker(env, concurrency=CONCURRENCY, name=f"worker-restart-{kill}")
            timeline[f"restart {kill}"] = round(time.monotonic() - started, 1)
        try:
            wait_for(
                lambda: sum(chaos.count(s) for s in ("sent", "failed", "expired")) >= MESSAGES,
                TERMINAL_WITHIN_SECONDS,
                "every message terminal",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {broker_state(chaos)}") from None
        timeline["all terminal"] = round(time.monotonic() - started, 1)
        received = sim.messages()
    rows = chaos.rows()
    dups = duplicates(received)
    outside = [text for (_, text) in dups if text not in in_window]
    row = tally(
        "worker SIGKILL ×2 (prefork 4)",
        rows,
        received,
        texts,
        notes=f"{len(KILL_AT_SENT)} kills; {len(in_window)} messages were `sending` at a kill "
        f"(the duplicate window); duplicates outside it: {len(outside)}",
        kills=len(KILL_AT_SENT),
        sending_at_kill=len(in_window),
        timeline=timeline,
        seconds=round(time.monotonic() - started, 1),
    )
    record(row)
    assert len(rows) == MESSAGES, "one row per producer message (task id = idempotency key)"
    assert row.lost == 0, row
    assert not outside, f"duplicates outside the kill window: {outside}"
    assert row.duplicated <= len(in_window) <= len(KILL_AT_SENT) * CONCURRENCY
    assert all(m["number"] == digits(int(m["text"].rsplit(" ", 1)[1]) % CONTACTS) for m in received)


def broker_state(chaos: Chaos) -> str:
    """Rows by state and what the broker still holds, for a timeout's message."""
    client = chaos.redis.client()
    return (
        f"rows {chaos.states()}; broker: {client.llen('celery')} queued, "
        f"{client.hlen('unacked')} unacked, {client.zcard('unacked_index')} indexed"
    )


#: Thresholds that would otherwise bring a dead worker's messages back: far beyond the test,
#: so that only heartbeats (worker/heartbeat.py) can recover them in time.
HEARTBEAT_ONLY = {
    "WORKER_DEAD_AFTER_SECONDS": "3",
    "SENDING_STUCK_AFTER_SECONDS": "900",
    "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3600",
}
#: Every message a killed worker held must be sent within this many seconds of the kill.
RECOVERED_WITHIN_SECONDS = 60


def test_worker_killed_twice_is_recovered_by_heartbeats_within_a_minute(chaos: Chaos) -> None:
    chaos.add_instances(INSTANCES)
    started = time.monotonic()
    with running_simulator(INSTANCES, seed=8) as sim:
        for name, latency in zip(INSTANCES, (20, 35, 50), strict=True):
            sim.configure_instance(name, latency_ms=latency)
        env = chaos.env(sim.url, **HEARTBEAT_ONLY)
        chaos.beat(env)
        chaos.worker(env, concurrency=2, name="steady")
        victim = chaos.worker(env, concurrency=CONCURRENCY, name="victim")
        app = chaos.producer()
        texts = [f"heartbeat-kill message {i}" for i in range(MESSAGES)]
        for i, body in enumerate(texts):
            contact = i % CONTACTS
            app.send_task(
                SEND,
                kwargs={"phone": phone(contact), "text": body, "contact_id": f"doctor-{contact}"},
            )
        in_window: set[str] = set()
        recovery: list[float] = []
        for kill, threshold in enumerate(KILL_AT_SENT, start=1):
            wait_for(lambda t=threshold: chaos.count("sent") >= t, 120, f"{threshold} sent")
            victim.kill()
            killed_at = time.monotonic()
            held = {r[0] for r in chaos.query("SELECT text FROM messages WHERE state = 'sending'")}
            in_window |= held
            # A supervisor starts a replacement; recovery does not wait for it (the steady
            # worker's sweep re-drives what the dead one held).
            victim = chaos.worker(env, concurrency=CONCURRENCY, name=f"victim-{kill}")

            def held_sent(h: set[str] = held) -> bool:
                sent = chaos.query("SELECT text FROM messages WHERE state = 'sent'")
                return h <= {r[0] for r in sent}

            wait_for(held_sent, RECOVERED_WITHIN_SECONDS, f"kill {kill}: held messages sent")
            recovery.append(round(time.monotonic() - killed_at, 1))
        wait_for(
            lambda: sum(chaos.count(s) for s in ("sent", "failed", "expired")) >= MESSAGES,
            TERMINAL_WITHIN_SECONDS,
            "every message terminal",
        )
        received = sim.messages()
    rows = chaos.rows()
    dups = duplicates(received)
    outside = [text for (_, text) in dups if text not in in_window]
    print(f"recovery after SIGKILL (heartbeats): held messages sent {recovery} s after the kills")
    row = tally(
        "worker SIGKILL ×2, heartbeats only (prefork 4 + 2)",
        rows,
        received,
        texts,
        notes=f"stuck threshold 900 s, visibility 3600 s, WORKER_DEAD_AFTER_SECONDS 3: the "
        f"messages each killed worker held were sent {recovery} s after the kill; "
        f"{len(in_window)} were `sending` at a kill; duplicates outside them: {len(outside)}",
        kills=len(KILL_AT_SENT),
        sending_at_kill=len(in_window),
        seconds=round(time.monotonic() - started, 1),
    )
    record(row)
    assert len(rows) == MESSAGES
    assert row.lost == 0, row
    assert not outside, f"duplicates outside the kill window: {outside}"
    assert all(seconds < RECOVERED_WITHIN_SECONDS for seconds in recovery), recovery
