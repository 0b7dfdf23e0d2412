"""Issue 7.3: time per routing decision at 10, 100 and 1,000 instances, 1,000,000 contacts.

In-process, one thread, on real PostgreSQL and Redis (Evolution faked by MockTransport, so a
"send" costs nothing). Each message takes the `zapdispatch.send_message` path after
validation (`Dispatcher.deliver_new`). A routing decision is what it does before it has a
slot: learn the contact's sticky instance, list the instances, plan the route, reserve on
the limiter (it ends when `Limiter.reserve` returns). With a million contacts a worker's
sticky cache (worker/sticky_cache.py) rarely knows the contact, and 80 % of them already
have a number, so the worker records the message first and routes on the database's answer:
the decision includes that statement. The whole delivery (record, claim, send, record) is
timed too.

The three sizes are measured in interleaved rounds (10, 100, 1000, 10, 100, ...) so that the
machine's load drifts hit them alike; the instance table is grown and shrunk between rounds.
Counted per message: Redis round trips (client side), limiter script calls, SQL statements
(`before_cursor_execute`) and connection checkouts (each one a transaction, plus a ping with
`pool_pre_ping`).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from bench.env import BenchEnv
from models.message_store import NewMessage
from tests.support.counting import REDIS_ROUND_TRIPS
from tests.support.stack import Stack, build_stack

CONTACTS = 1_000_000
SIZES = (10, 100, 1000)
ROUNDS = 4
PER_ROUND = 150
WARMUP = 15
NEW_CONTACT_SHARE = 0.2  # messages whose contact has no sticky instance yet
HOURLY_CAP = 1_000_000
DAILY_CAP = 10_000_000


def instance_name(i: int) -> str:
    return f"inst-{i:04d}"


def contact_id(i: int) -> str:
    return f"c{i:07d}"


def contact_phone(i: int) -> str:
    return f"55119{i:08d}"


def run(
    env: BenchEnv, *, profile: Callable[[int, Callable[[], None]], None] | None = None
) -> dict[str, Any]:
    settings = env.settings()
    stack = build_stack(settings, clock=time.time, policies=False)
    rng = random.Random(7)
    try:
        env.reset(stack.res.engine)
        setup = _insert_contacts(stack)
        samples: dict[int, list[dict[str, float]]] = {size: [] for size in SIZES}
        round_ratios = []
        for _ in range(ROUNDS):
            p50 = {}
            for size in SIZES:
                rows = _round(stack, size, rng)
                samples[size].extend(rows)
                p50[size] = statistics.median(r["decision_ms"] for r in rows)
            round_ratios.append(p50[max(SIZES)] / p50[min(SIZES)])
        if profile is not None:
            profile(max(SIZES), lambda: _round(stack, max(SIZES), rng))
        return _report(samples, round_ratios, setup)
    finally:
        stack.close()


def _insert_contacts(stack: Stack) -> float:
    started = time.perf_counter()
    with stack.res.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (id, phone) SELECT 'c' || lpad(g::text, 7, '0'), "
                "'55119' || lpad(g::text, 8, '0') FROM generate_series(0, :n - 1) AS g"
            ),
            {"n": CONTACTS},
        )
    with stack.res.engine.connect() as conn:
        autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
        autocommit.execute(text("VACUUM ANALYZE contacts"))
    return time.perf_counter() - started


def _set_instances(stack: Stack, size: int) -> None:
    """Exactly `size` connected instances, inst-0000 .. inst-<size-1>."""
    with stack.res.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM instances WHERE name >= :first"), {"first": instance_name(size)}
        )
        conn.execute(
            text(
                "INSERT INTO instances (name, phone, status, hourly_cap, daily_cap, active, "
                "consecutive_failures) SELECT 'inst-' || lpad(g::text, 4, '0'), '5511900000000', "
                "'connected', :hourly, :daily, true, 0 FROM generate_series(0, :n - 1) AS g "
                "ON CONFLICT (name) DO NOTHING"
            ),
            {"n": size, "hourly": HOURLY_CAP, "daily": DAILY_CAP},
        )


def _prepare_messages(stack: Stack, size: int, count: int, rng: random.Random) -> list[NewMessage]:
    """`count` messages to random contacts; most already stick to one of the `size` instances."""
    picked = rng.sample(range(CONTACTS), count)
    prefs = [
        None if rng.random() < NEW_CONTACT_SHARE else instance_name(rng.randrange(size))
        for _ in picked
    ]
    with stack.res.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE contacts SET preferred_instance = u.pref FROM "
                "unnest(CAST(:ids AS text[]), CAST(:prefs AS text[])) AS u(id, pref) "
                "WHERE contacts.id = u.id"
            ),
            {"ids": [contact_id(i) for i in picked], "prefs": prefs},
        )
    return [
        stack.intake.validated(
            {"phone": contact_phone(i), "text": "bench", "contact_id": contact_id(i)}
        )
        for i in picked
    ]


def _round(stack: Stack, size: int, rng: random.Random) -> list[dict[str, float]]:
    _set_instances(stack, size)
    stack.forget_instances()
    messages = _prepare_messages(stack, size, WARMUP + PER_ROUND, rng)
    for new in messages[:WARMUP]:
        stack.dispatcher.deliver_new(new)
    return [_measure(stack, new) for new in messages[WARMUP:]]


def _measure(stack: Stack, new: NewMessage) -> dict[str, float]:
    before = (
        REDIS_ROUND_TRIPS.mine(),
        stack.scripts.round_trips,
        stack.sql.statements.mine(),
        stack.sql.checkouts.mine(),
    )
    started = time.perf_counter()
    result = stack.dispatcher.deliver_new(new)
    ended = time.perf_counter()
    reserved = stack.limiter.last_reserve_end() or ended
    assert result.result.value == "sent", result
    return {
        "decision_ms": (reserved - started) * 1000,
        "deliver_ms": (ended - started) * 1000,
        "redis": REDIS_ROUND_TRIPS.mine() - before[0],
        "limiter": stack.scripts.round_trips - before[1],
        "sql": stack.sql.statements.mine() - before[2],
        "checkouts": stack.sql.checkouts.mine() - before[3],
    }


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(
    samples: dict[int, list[dict[str, float]]], round_ratios: list[float], setup: float
) -> dict[str, Any]:
    sizes: dict[str, Any] = {}
    for size, rows in samples.items():
        decision = [r["decision_ms"] for r in rows]
        deliver = [r["deliver_ms"] for r in rows]
        sizes[str(size)] = {
            "messages": len(rows),
            "decision_ms_p50": round(statistics.median(decision), 3),
            "decision_ms_p90": round(_pct(decision, 0.9), 3),
            "decision_ms_p99": round(_pct(decision, 0.99), 3),
            "deliver_ms_p50": round(statistics.median(deliver), 3),
            "redis_round_trips_per_message": round(statistics.mean(r["redis"] for r in rows), 3),
            "limiter_calls_per_decision": round(statistics.mean(r["limiter"] for r in rows), 3),
            "sql_statements_per_message": round(statistics.mean(r["sql"] for r in rows), 3),
            "transactions_per_message": round(statistics.mean(r["checkouts"] for r in rows), 3),
        }
    small, large = sizes[str(min(SIZES))], sizes[str(max(SIZES))]
    return {
        "contacts": CONTACTS,
        "contacts_setup_seconds": round(setup, 1),
        "rounds": ROUNDS,
        "sizes": sizes,
        "decision_p50_ratio_1000_vs_10": round(statistics.median(round_ratios), 3),
        "decision_p50_ratio_per_round": [round(r, 3) for r in round_ratios],
        "decision_p50_ratio_pooled": round(large["decision_ms_p50"] / small["decision_ms_p50"], 3),
        "deliver_p50_ratio_1000_vs_10": round(large["deliver_ms_p50"] / small["deliver_ms_p50"], 3),
    }
