"""Recovery after SIGKILL: a worker killed (its whole process group) twice mid-batch.

The scenario of tests/chaos/test_worker_kill.py (heartbeats only), run through the chaos
harness itself: a private PostgreSQL cluster and `redis-server`, beat running, a steady
worker (prefork 2) and a victim (prefork 4) on a batch of MESSAGES messages published in
two halves, the victim SIGKILLed at each KILL_AT_SENT count of sent messages (once it is in
the middle of a send) and replaced at once; the second half is published once the
replacement is up, so that the second kill also lands on a busy worker. The stuck-send
threshold and the visibility timeout are set far beyond the run, so only heartbeats
(`WORKER_DEAD_AFTER_SECONDS`, 3 s here) bring back what the dead worker held.

Figures, over RUNS runs:
* lost: messages not terminal, or `sent` without the simulator having received them (0);
* duplicates: extra copies the simulator received, next to the messages that were
  `sending` at a kill (a send in flight may have reached Evolution unrecorded);
* recovery seconds: from each kill to the last of the killed worker's messages (its
  `sending` claims and the broker messages it had fetched but not acknowledged) recorded
  `sent`; p50 and max over every kill.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from base64 import b64decode
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine

from bench.env import BenchEnv
from tests import services
from tests.chaos.harness import SEND, Chaos, duplicates, phone, tally, wait_for
from tests.chaos.servers import PrivatePostgres, PrivateRedis, postgres_bindir
from tests.chaos.test_worker_kill import (
    CONCURRENCY,
    CONTACTS,
    HEARTBEAT_ONLY,
    INSTANCES,
    RECOVERED_WITHIN_SECONDS,
)
from tests.e2e.conftest import CeleryProcess
from tests.e2e.test_dead_workers import group_pids, pid_of
from tests.simulator_server import running_simulator
from worker.keys import UNACKED_OWNERS

RUNS = 2
MESSAGES = 400
#: Each kill waits for this many messages sent and for the victim to hold a claim; the
#: batch is published in as many parts, one before each kill (after the replacement is up).
KILL_AT_SENT = (80, 280)
TEMPLATE = "zd_recovery_template"
#: Longest a run may take to make every message terminal (seconds).
TERMINAL_WITHIN_SECONDS = 120


def run(env: BenchEnv) -> dict[str, Any]:
    """The section's figures; `env` is unused: the scenario runs on private servers."""
    bindir = postgres_bindir()
    if bindir is None or shutil.which("redis-server") is None:
        return {"missing": "PostgreSQL server binaries (initdb, pg_ctl) or redis-server"}
    workdir = Path(tempfile.mkdtemp(prefix="zd-bench-recovery-"))
    cluster = PrivatePostgres(bindir)
    try:
        cluster.init()
        cluster.execute(f'CREATE DATABASE "{TEMPLATE}"')
        services.migrate(cluster.url(TEMPLATE))
        runs = [_one(cluster, workdir / f"run-{n}", seed=n) for n in range(RUNS)]
    finally:
        cluster.close()
        shutil.rmtree(workdir, ignore_errors=True)
    recovery = [seconds for r in runs for seconds in r["recovery_seconds"]] or [0.0]
    return {
        "runs": RUNS,
        "messages": MESSAGES,
        "kills_per_run": len(KILL_AT_SENT),
        "worker_dead_after_seconds": float(HEARTBEAT_ONLY["WORKER_DEAD_AFTER_SECONDS"]),
        "lost": sum(r["lost"] for r in runs),
        "duplicated": sum(r["duplicated"] for r in runs),
        "sending_at_kill": sum(r["sending_at_kill"] for r in runs),
        "duplicates_outside_kill_window": sum(r["duplicates_outside"] for r in runs),
        "recovery_seconds_p50": round(statistics.median(recovery), 1),
        "recovery_seconds_max": max(recovery),
        "recovery_target_seconds": RECOVERED_WITHIN_SECONDS,
        "per_run": runs,
    }


def _one(cluster: PrivatePostgres, workdir: Path, seed: int) -> dict[str, Any]:
    """One batch with two kills, on a fresh database and a fresh redis-server."""
    workdir.mkdir(parents=True)
    name = f"zd_recovery_{uuid.uuid4().hex[:10]}"
    cluster.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    broker = PrivateRedis(workdir)
    broker.start()
    engine = create_engine(cluster.url(name), pool_pre_ping=True)
    started: list[CeleryProcess] = []

    def start(args: list[str], env: dict[str, str], name: str = "worker") -> CeleryProcess:
        process = CeleryProcess(args, env, workdir / f"{name}-{len(started)}.log")
        started.append(process)
        return process

    chaos = Chaos(cluster, cluster.url(name), broker, engine, start, workdir)
    try:
        return _scenario(chaos, seed)
    finally:
        for process in started:  # nothing left to shut down gracefully: the run is over
            process.kill()
            process.stop()
        engine.dispose()
        broker.close()
        cluster.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _scenario(chaos: Chaos, seed: int) -> dict[str, Any]:
    chaos.add_instances(INSTANCES)
    started = time.monotonic()
    with running_simulator(INSTANCES, seed=seed) as sim:
        for instance, latency in zip(INSTANCES, (20, 35, 50), strict=True):
            sim.configure_instance(instance, latency_ms=latency)
        env = chaos.env(sim.url, **HEARTBEAT_ONLY)
        chaos.beat(env)
        chaos.worker(env, concurrency=2, name="steady")
        victim = chaos.worker(env, concurrency=CONCURRENCY, name="victim")
        app = chaos.producer()
        texts = [f"recovery-bench message {i}" for i in range(MESSAGES)]
        part = -(-MESSAGES // len(KILL_AT_SENT))
        in_window: set[str] = set()
        kills: list[dict[str, Any]] = []
        for kill, threshold in enumerate(KILL_AT_SENT, start=1):
            # Each victim gets its share of the batch: without this, the steady worker
            # alone has often sent everything by the time a replacement is ready.
            for i in range(part * (kill - 1), min(part * kill, MESSAGES)):
                contact = i % CONTACTS
                app.send_task(
                    SEND,
                    kwargs={
                        "phone": phone(contact),
                        "text": texts[i],
                        "contact_id": f"doctor-{contact}",
                    },
                )
            pids = group_pids(victim)

            def due(t: int = threshold, p: set[int] = pids) -> bool:
                """`t` messages sent, and the victim in the middle of a send."""
                return chaos.count("sent") >= t and bool(_held_by(chaos, p)[0])

            wait_for(due, 120, f"{threshold} sent and a claim of the victim")
            victim.kill()
            killed_at = time.monotonic()
            in_window |= {
                r[0] for r in chaos.query("SELECT text FROM messages WHERE state = 'sending'")
            }
            claims, fetched = _held_by(chaos, pids)
            states = chaos.states()
            # A supervisor starts a replacement; recovery does not wait for it (the steady
            # worker's sweep re-drives what the dead one held), nor does the figure.
            replacement = _Replacement(chaos, env, f"victim-{kill}")
            held = claims | fetched

            def held_sent(h: set[str] = held) -> bool:
                sent = chaos.query("SELECT text FROM messages WHERE state = 'sent'")
                return h <= {r[0] for r in sent}

            wait_for(held_sent, RECOVERED_WITHIN_SECONDS, f"kill {kill}: held messages sent")
            kills.append(
                {
                    "claims": len(claims),
                    "fetched": len(fetched - claims),
                    "states_at_kill": states,
                    "seconds": round(time.monotonic() - killed_at, 1),
                }
            )
            victim = replacement.ready()
        wait_for(
            lambda: sum(chaos.count(s) for s in ("sent", "failed", "expired")) >= MESSAGES,
            TERMINAL_WITHIN_SECONDS,
            "every message terminal",
        )
        received = sim.messages()
    row = tally("recovery after SIGKILL", chaos.rows(), received, texts)
    outside = [text for (_, text) in duplicates(received) if text not in in_window]
    return {
        "lost": row.lost,
        "duplicated": row.duplicated,
        "sending_at_kill": len(in_window),
        "duplicates_outside": len(outside),
        "kills": kills,
        "recovery_seconds": [k["seconds"] for k in kills if k["claims"] or k["fetched"]],
        "seconds": round(time.monotonic() - started, 1),
    }


class _Replacement:
    """A victim worker being started in a thread, as a supervisor would restart it."""

    def __init__(self, chaos: Chaos, env: dict[str, str], name: str) -> None:
        self._started: list[CeleryProcess] = []
        self._thread = threading.Thread(
            target=lambda: self._started.append(
                chaos.worker(env, concurrency=CONCURRENCY, name=name)
            )
        )
        self._thread.start()

    def ready(self) -> CeleryProcess:
        self._thread.join()
        if not self._started:
            raise RuntimeError("the replacement worker did not start")
        return self._started[0]


def _held_by(chaos: Chaos, pids: set[int]) -> tuple[set[str], set[str]]:
    """Texts of what the processes `pids` held: their `sending` claims, and the messages
    of the broker messages they had fetched but not acknowledged (owners recorded by the
    crash-safe fetch; a `send_message` carries the text, a `deliver_message` the row id)."""
    rows = chaos.query("SELECT text, claimed_by FROM messages WHERE state = 'sending'")
    claims = {str(t) for t, c in rows if c and pid_of(str(c)) in pids}
    client = chaos.redis.client()
    owners = client.hgetall(UNACKED_OWNERS)
    tags = [tag for tag, owner in owners.items() if pid_of(owner.decode()) in pids]
    fetched: set[str] = set()
    ids: list[str] = []
    for raw in client.hmget("unacked", tags) if tags else []:
        if raw is None:
            continue
        envelope = json.loads(raw)[0]
        args, kwargs, _ = json.loads(b64decode(envelope["body"]))
        if envelope["headers"]["task"] == SEND:
            fetched.add(str(kwargs["text"]))
        elif args or "message_id" in kwargs:
            ids.append(str(args[0] if args else kwargs["message_id"]))
    if ids:
        found = chaos.query("SELECT text FROM messages WHERE id::text = ANY(:ids)", ids=ids)
        fetched |= {str(r[0]) for r in found}
    return claims, fetched
