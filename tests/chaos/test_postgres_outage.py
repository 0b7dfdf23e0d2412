"""Fault 3: PostgreSQL is down for 30 s under load.

Tasks that hit the outage retry with backoff (tasks/messages.py: infrastructure errors retry
for as long as they last; INFRASTRUCTURE_RETRY_MAX_SECONDS caps the pause); a send already
made when the database went away waits in place to record `sent` (worker/outcomes.py,
`Outcomes._record_sent`) instead of leaving a claim for the sweep to re-send; nothing is lost; no
instance sends more than its hourly cap; the status API's `/dashboard/health` goes
`degraded` during the outage and `healthy` after. Messages beyond the caps wait for a slot
until their TTL and then end `expired`.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from config import Settings
from tests.chaos.harness import SEND, Chaos, phone, tally, wait_for
from tests.chaos.results import record
from tests.simulator_server import running_simulator
from worker.api.app import create_app
from worker.api.deps import deps_from_resources
from worker.resources import build_resources

pytestmark = pytest.mark.chaos

INSTANCES = ["inst-a", "inst-b", "inst-c"]
HOURLY_CAP = 50
MESSAGES = 200  # 50 more than the three caps allow within the hour
TTL_SECONDS = 15
#: A claim whose `sent` could not be committed is retried in place for half of this, so it
#: must cover the outage (else the sweep re-sends the message: a duplicate).
STUCK_AFTER_SECONDS = 80
OUTAGE_SECONDS = 30.0
DOWN_AT_SENT = 40


def hourly_peaks(received: list[dict[str, object]], zone: ZoneInfo) -> dict[str, int]:
    """Most messages one instance got in one local clock hour (caps reset on the hour)."""
    per_window = Counter(
        (
            m["instance"],
            datetime.fromtimestamp(float(m["received_at"]), zone).strftime("%Y%m%d%H"),  # type: ignore[arg-type]
        )
        for m in received
    )
    peaks: dict[str, int] = {}
    for (instance, _), n in per_window.items():
        peaks[str(instance)] = max(n, peaks.get(str(instance), 0))
    return peaks


def collapse(values: list[str]) -> list[str]:
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def test_postgres_down_30s_under_load(chaos: Chaos) -> None:
    chaos.add_instances(INSTANCES, hourly=HOURLY_CAP)
    started = time.monotonic()
    settings = Settings(database_url=chaos.database_url, redis_url=chaos.redis.url, _env_file=None)  # type: ignore[call-arg]
    res = build_resources(settings)
    api = TestClient(create_app(deps_from_resources(res)))

    def health() -> str:
        return str(api.get("/dashboard/health").json()["status"])

    seen: list[str] = []
    try:
        with running_simulator(INSTANCES, seed=3, latency_ms=20) as sim:
            env = chaos.env(
                sim.url,
                SENDING_STUCK_AFTER_SECONDS=str(STUCK_AFTER_SECONDS),
                INFRASTRUCTURE_RETRY_MAX_SECONDS="4",
                EVOLUTION_TIMEOUT_SECONDS="10",
            )
            chaos.beat(env)
            worker = chaos.worker(env, concurrency=4)
            seen.append(health())
            app = chaos.producer()
            texts = [f"pg-outage message {i}" for i in range(MESSAGES)]
            for i, body in enumerate(texts):
                app.send_task(
                    SEND, kwargs={"phone": phone(i), "text": body, "ttl_seconds": TTL_SECONDS}
                )
            wait_for(lambda: chaos.count("sent") >= DOWN_AT_SENT, 60, f"{DOWN_AT_SENT} sent")
            chaos.pg.stop("immediate")
            down_at = time.monotonic()
            seen.append(health())
            time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
            seen.append(health())
            chaos.pg.start()
            back_at = time.monotonic()
            wait_for(lambda: health() == "healthy", 30, "health back to healthy")
            seen.append(health())
            wait_for(
                lambda: sum(chaos.count(s) for s in ("sent", "failed", "expired")) >= MESSAGES,
                150,
                "every message terminal",
            )
            drained_in = time.monotonic() - back_at
            received = sim.messages()
            assert worker.proc.poll() is None, "the worker survived the outage"
    finally:
        api.close()
        res.close()
    rows = chaos.rows()
    logs = "".join(p.read_text() for p in chaos.workdir.glob("worker*.log"))
    retries = logs.count("Retry in")
    held = len(set(re.findall(r"message (\S+) was sent but not recorded yet", logs)))
    peaks = hourly_peaks(received, settings.zone)
    row = tally(
        f"postgres down {OUTAGE_SECONDS:.0f} s under load",
        rows,
        received,
        texts,
        notes=f"{retries} task retries with backoff; {held} sends made just before the outage "
        f"recorded `sent` after it (retried in place); all terminal {drained_in:.0f} s after "
        f"PostgreSQL returned; health {' → '.join(collapse(seen))}; "
        f"peak per instance-hour {max(peaks.values(), default=0)}/{HOURLY_CAP} "
        f"(cap {HOURLY_CAP}×3 < {MESSAGES}: the rest expire at TTL {TTL_SECONDS} s)",
        retries=retries,
        recorded_after_outage=held,
        health=seen,
        peaks=peaks,
        drained_seconds=round(drained_in, 1),
        seconds=round(time.monotonic() - started, 1),
    )
    record(row)
    assert row.lost == 0 and len(rows) == MESSAGES, row
    assert row.duplicated == 0, row
    assert row.extra["received_but_not_sent_in_db"] == 0, "a delivered message recorded otherwise"
    assert all(n <= HOURLY_CAP for n in peaks.values()), peaks
    # A process that hit the outage retried its task with backoff, or (caught between the
    # HTTP call and the commit of `sent`) held on and recorded `sent` once PostgreSQL was back.
    assert retries + held > 0
    assert seen[0] == "healthy" and seen[1] == "degraded" and seen[2] == "degraded"
    assert seen[-1] == "healthy"
