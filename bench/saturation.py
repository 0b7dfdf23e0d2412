"""Issue 3: saturate 3 instances with 2,000 messages in controlled time.

In-process: one `Dispatcher` (RedisLimiter on real Redis, real PostgreSQL, Evolution faked by
httpx.MockTransport) driven by a pool of threads, as Celery workers would drive it. Time is
the shared test clock (`{zd}:clock`, TEST_CLOCK_ENABLED=1), moved by the bench:

- a delivery requeued with a countdown runs again when the clock reaches it (a Celery ETA);
- the sweep (`Sweeper.run()`) runs every SWEEP_INTERVAL_SECONDS of simulated time and wakes
  parked (`waiting`) messages whose `not_before` has come; stretches where nothing is due are
  skipped, so the run takes seconds for hours of simulated time.

Reported: sends over a cap (must be 0), utilization of the capacity that demand could use
(target >= 98 %), average requeues per message that waited (target <= 1.5) and Redis round
trips per routing decision (target 1).
"""

from __future__ import annotations

import math
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from bench.env import BenchEnv
from models.views import to_datetime
from tests.support.counting import REDIS_ROUND_TRIPS
from tests.support.evolution import T0
from tests.support.stack import Stack, build_stack
from worker import keys
from worker.clock import set_test_clock

INSTANCES = ("sat-a", "sat-b", "sat-c")
HOURLY_CAP = 200
DAILY_CAP = 5_000
MESSAGES = 2_000
CONTACTS = 1_000
THREADS = 8
SWEEP_INTERVAL_SECONDS = 15.0
MAX_SIMULATED_HOURS = 12


@dataclass
class SimClock:
    """The bench's view of the shared test clock (unix seconds)."""

    now: float

    def move(self, stack: Stack, to: float) -> None:
        self.now = to
        set_test_clock(stack.res.redis, to)


#: The warm-up pass: every number on day 1 of this ramp (daily caps for day 1, 2), so its
#: effective caps are 1,000/day and 200 × 1,000 / 5,000 = 40/h; fewer messages, same rules.
WARMUP_SCHEDULE = "1000,2000"
WARMUP_HOURLY_CAP = 40
WARMUP_MESSAGES = 400


def run(env: BenchEnv) -> dict[str, Any]:
    """The saturation run, then the same with a warm-up ramp in force (`warmup`)."""
    report = _run(env, MESSAGES, HOURLY_CAP, warmup="")
    ramp = _run(env, WARMUP_MESSAGES, WARMUP_HOURLY_CAP, warmup=WARMUP_SCHEDULE)
    report["warmup"] = {
        "schedule": WARMUP_SCHEDULE,
        "effective_hourly_cap": WARMUP_HOURLY_CAP,
        "messages": WARMUP_MESSAGES,
        **{k: ramp[k] for k in ("sent_per_hour", "over_cap_sends", "limiter_calls_per_decision")},
    }
    return report


def _run(env: BenchEnv, messages: int, hourly_cap: int, *, warmup: str) -> dict[str, Any]:
    settings = env.settings(test_clock_enabled=True, warmup_schedule=warmup)
    clock = SimClock(T0)
    stack = build_stack(settings, clock=lambda: clock.now, policies=False)
    try:
        env.reset(stack.res.engine)
        stack.res.redis.set(keys.SENTINEL, "1")  # Redis did not lose its data: a fresh start
        stack.res.redis.set(keys.COUNTERS_SENTINEL, "1")  # nor the limiter's counters
        clock.move(stack, T0)
        stack.add_instances(INSTANCES, HOURLY_CAP, DAILY_CAP)
        if warmup:
            for name in INSTANCES:  # day 1 of the ramp at T0
                stack.res.instances.restart_warmup(name, to_datetime(T0))
        ids = accept_many(stack, messages, CONTACTS)
        started = time.perf_counter()
        counts = _drive(stack, clock, ids)
        wall = time.perf_counter() - started
        return _report(stack, counts, wall, messages, hourly_cap)
    finally:
        stack.close()


def _drive(stack: Stack, clock: SimClock, ids: list[uuid.UUID]) -> dict[str, int]:
    """Deliver, then move the clock from event to event until nothing is pending."""
    results: Counter[str] = Counter()
    rt0, trips0, sweeps = stack.scripts.round_trips, REDIS_ROUND_TRIPS.total, 0
    refreshes0 = stack.scripts.table_refreshes
    batch = ids
    while clock.now < T0 + MAX_SIMULATED_HOURS * 3600:
        results.update(d.result.value for d in stack.deliver_all(batch, THREADS))
        batch = stack.scheduler.pop_due(clock.now)
        if batch:
            continue
        nxt = _next_event(stack, clock.now)
        if nxt is None:
            break
        at, is_sweep = nxt
        clock.move(stack, at)
        if is_sweep:
            sweeps += 1
            stack.sweeper.run()
        batch = stack.scheduler.pop_due(clock.now)
    return {
        **{f"result_{k}": v for k, v in results.items()},
        "deliver_calls": sum(results.values()),
        "decisions": stack.limiter.decisions.total,
        "limiter_round_trips": stack.scripts.round_trips - rt0,
        "offset_table_refreshes": stack.scripts.table_refreshes - refreshes0,
        "redis_round_trips": REDIS_ROUND_TRIPS.total - trips0,
        "sweeps": sweeps,
        "simulated_seconds": int(clock.now - T0),
    }


def _next_event(stack: Stack, now: float) -> tuple[float, bool] | None:
    """(time, is_sweep): the next countdown due, or the first sweep tick at which a parked
    message is due, whichever comes first."""
    countdown = stack.scheduler.next_due()
    with stack.res.engine.connect() as conn:
        parked = conn.execute(
            text("SELECT extract(epoch FROM min(not_before)) FROM messages WHERE state = 'waiting'")
        ).scalar()
    sweep = None
    if parked is not None:
        due = max(float(parked), now + 1e-6)
        sweep = T0 + math.ceil((due - T0) / SWEEP_INTERVAL_SECONDS) * SWEEP_INTERVAL_SECONDS
    if countdown is None and sweep is None:
        return None
    if sweep is None or (countdown is not None and countdown < sweep):
        return max(countdown or now, now), False
    return sweep, True


def _report(
    stack: Stack, counts: dict[str, int], wall: float, messages: int, hourly_cap: int
) -> dict[str, Any]:
    with stack.res.engine.connect() as conn:
        states = dict(
            conn.execute(text("SELECT state, count(*) FROM messages GROUP BY state")).all()
        )
        waited, requeues, max_requeues = conn.execute(
            text(
                "SELECT count(*), coalesce(sum(requeues), 0), coalesce(max(requeues), 0) "
                "FROM messages WHERE requeues > 0"
            )
        ).one()
        sent_rows = conn.execute(
            text("SELECT instance, extract(epoch FROM sent_at) FROM messages WHERE state = 'sent'")
        ).all()
    per_hour = _per_hour([(str(i), float(at)) for i, at in sent_rows])
    fake_per_hour = _per_hour(stack.evolution.sends())
    over_cap = _over_cap(per_hour, hourly_cap) + _over_cap(fake_per_hour, hourly_cap)
    utilization = _utilization(per_hour, messages, hourly_cap)
    decisions = max(1, counts["decisions"])
    return {
        "instances": len(INSTANCES),
        "hourly_cap": HOURLY_CAP,
        "daily_cap": DAILY_CAP,
        "messages": messages,
        "contacts": CONTACTS,
        "threads": THREADS,
        "states": {str(k): int(v) for k, v in states.items()},
        "sent_per_hour": [sum(h.values()) for h in _hours(per_hour)],
        "over_cap_sends": over_cap,
        "utilization": utilization,
        "waited_messages": int(waited),
        "requeues_per_waiting_message": round(int(requeues) / int(waited), 3) if waited else 0.0,
        "max_requeues": int(max_requeues),
        # A decision is one script call; when the simulated clock jumps past the limiter's
        # UTC-offset table, one call answers "stale" and is made again (counted apart).
        "limiter_calls_per_decision": round(
            (counts["limiter_round_trips"] - counts["offset_table_refreshes"]) / decisions, 3
        ),
        "redis_round_trips_per_deliver": round(
            counts["redis_round_trips"] / max(1, counts["deliver_calls"]), 3
        ),
        "scheduler": as_dict(stack.scheduler.countdowns),
        "counts": counts,
        "wall_seconds": round(wall, 2),
    }


def _per_hour(sends: list[tuple[str, float]]) -> dict[tuple[str, int], int]:
    """Sends per (instance, hour index since T0); T0 is a local hour start (no DST in play)."""
    out: Counter[tuple[str, int]] = Counter()
    for instance, at in sends:
        out[(instance, math.floor((at - T0) / 3600))] += 1
    return dict(out)


def _hours(per_hour: dict[tuple[str, int], int]) -> list[dict[str, int]]:
    last = max((h for _, h in per_hour), default=-1)
    return [{i: n for (i, h), n in per_hour.items() if h == hour} for hour in range(last + 1)]


def _over_cap(per_hour: dict[tuple[str, int], int], hourly_cap: int) -> int:
    hourly = sum(max(0, n - hourly_cap) for n in per_hour.values())
    days: Counter[str] = Counter()
    for (instance, _), n in per_hour.items():
        days[instance] += n  # the whole run stays inside one local day
    return hourly + sum(max(0, n - DAILY_CAP) for n in days.values())


def _utilization(per_hour: dict[tuple[str, int], int], messages: int, hourly_cap: int) -> float:
    """Sends / the capacity demand could have used: per hour, min(capacity, backlog)."""
    capacity, backlog, usable = hourly_cap * len(INSTANCES), messages, 0
    for hour in _hours(per_hour):
        usable += min(capacity, backlog)
        backlog -= sum(hour.values())
    return round((messages - backlog) / usable, 4) if usable else 0.0


def phone(i: int) -> str:
    """A distinct valid Brazilian mobile number per index (up to 10^8)."""
    return f"+55 11 9{i // 10_000:04d}-{i % 10_000:04d}"


def accept_many(stack: Stack, count: int, contacts: int, threads: int = 8) -> list[uuid.UUID]:
    """`count` messages round-robin over `contacts` contacts, accepted through the intake."""

    def accept(n: int) -> uuid.UUID:
        c = n % contacts
        return stack.intake.accept(
            {"phone": phone(c), "text": f"bench message {n}", "contact_id": f"doctor-{c}"}
        ).id

    with ThreadPoolExecutor(threads, thread_name_prefix="accept") as pool:
        return list(pool.map(accept, range(count)))


def as_dict(counter: Counter[Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in counter.items()}
