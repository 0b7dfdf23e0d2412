"""Issue 15: webhook events per second on one `zapdispatch api` process, side by side with a
bare FastAPI endpoint that only answers 200 (same uvicorn settings), in one run.

The events are `messages.update` receipts (the bulk of Evolution's webhooks: up to three per
sent message) for messages seeded `sent`, each a real forward-only UPDATE. Both servers get
the same requests from one async client (`CONCURRENCY` in flight), alternating bare and real
rounds so drift in the shared machine hits both. Reported: events per second, p50 and p99
latency (ms), and the ratio real ÷ bare (target ≥ 0.5): the median over rounds of each real
round against the bare round just before it.

    python -m bench --only webhooks           # within the bench
    python -m bench.webhooks --bare-port N    # the bare server alone (used by the bench)
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import create_engine, text

from bench.env import BenchEnv
from bench.procs import launcher
from tests.support.processes import answers, python_argv, wait_until
from tests.support.services import free_port

TOKEN = "bench-webhook-token-0123456789abcdef"
MESSAGES = 3000
REQUESTS_PER_ROUND = 3000
ROUNDS = 3
CONCURRENCY = 16
STATUSES = ("SERVER_ACK", "DELIVERY_ACK", "READ")


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/webhooks/evolution")
    async def receive(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "ok"})

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _seed(env: BenchEnv) -> None:
    engine = create_engine(env.database_url)
    env.reset(engine)  # after another section: its instances and messages go
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO instances (name, phone, status, hourly_cap, daily_cap, active, "
                "consecutive_failures) VALUES ('inst-a', '5511900000000', 'connected', 1000, "
                "10000, true, 0)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO messages (id, phone, text, content_hash, state, instance, "
                "provider_message_id, expires_at, sent_at) SELECT gen_random_uuid(), "
                "'5511999998888', 'oi', md5(i::text), 'sent', 'inst-a', 'P' || i, "
                "now() + interval '1 day', now() FROM generate_series(0, :n - 1) AS i"
            ),
            {"n": MESSAGES},
        )
    engine.dispose()


def _bodies() -> list[dict[str, Any]]:
    return [
        {
            "event": "messages.update",
            "instance": "inst-a",
            "data": {
                "keyId": f"P{i % MESSAGES}",
                "remoteJid": "5511999998888@s.whatsapp.net",
                "fromMe": True,
                "status": STATUSES[(i // MESSAGES) % len(STATUSES)],
                "instanceId": "c1",
            },
            "date_time": "2026-12-04T20:00:00.000Z",
            "sender": "5511900000000@s.whatsapp.net",
            "server_url": "http://evolution",
            "apikey": None,
        }
        for i in range(REQUESTS_PER_ROUND * ROUNDS)
    ]


async def _round(url: str, bodies: list[dict[str, Any]]) -> dict[str, float]:
    latencies: list[float] = []
    resent = [0]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def one_worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                try:
                    answer = await client.post("/webhooks/evolution", json=body, headers=headers)
                except httpx.TransportError:  # a keep-alive connection the server just closed
                    resent[0] += 1
                    answer = await client.post("/webhooks/evolution", json=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(one_worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "events_per_second": round(len(bodies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2),
        "resent": resent[0],
    }


def run(env: BenchEnv) -> dict[str, Any]:
    _seed(env)
    real_port, bare_port = free_port(), free_port()
    process_env = env.worker_env(WEBHOOK_TOKEN=TOKEN)
    processes = launcher()
    try:
        processes.api(process_env, real_port)
        processes.start(
            python_argv("bench.webhooks", "--bare-port", str(bare_port)), process_env, "bare"
        )
        real_url, bare_url = f"http://127.0.0.1:{real_port}", f"http://127.0.0.1:{bare_port}"
        wait_until(lambda: answers(bare_url), 30, "the bare app to answer")
        bodies = _bodies()
        rounds: dict[str, list[dict[str, float]]] = {"bare": [], "webhooks": []}
        for n in range(ROUNDS):
            chunk = bodies[n * REQUESTS_PER_ROUND : (n + 1) * REQUESTS_PER_ROUND]
            rounds["bare"].append(asyncio.run(_round(bare_url, chunk)))
            rounds["webhooks"].append(asyncio.run(_round(real_url, chunk)))
    finally:
        processes.stop_all()
    best = {name: max(r, key=lambda x: x["events_per_second"]) for name, r in rounds.items()}
    pairs = [
        real["events_per_second"] / bare["events_per_second"]
        for bare, real in zip(rounds["bare"], rounds["webhooks"], strict=True)
    ]
    ratio = statistics.median(pairs)
    return {
        "requests_per_round": REQUESTS_PER_ROUND,
        "concurrency": CONCURRENCY,
        "rounds": rounds,
        "best": best,
        "ratio": round(ratio, 2),
        "target_ratio": 0.5,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bare-port", type=int, required=True)
    port = parser.parse_args().bare_port
    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="info")


if __name__ == "__main__":
    main()
