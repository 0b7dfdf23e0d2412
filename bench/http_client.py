"""CPU per send of the send path's HTTP client, side by side with httpx.

    python -m bench.http_client [--sends 2000] [--rounds 3]

The simulator runs in its own process (bench/simulator.py), so only the client's CPU is in
this process's `time.process_time()`. Each round sends `--sends` messages through
`KeepAliveHTTP` (http.client, worker/evolution/keepalive.py) and through an
`httpx.HTTPTransport` (the well-kept library), alternating; the figures are the median of
the rounds, in microseconds of this process's CPU per send, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import httpx

from worker.evolution.exchange import Exchange, HttpxExchange, Timeouts
from worker.evolution.keepalive import KeepAliveHTTP

HEADERS = [("user-agent", "zapdispatch"), ("accept", "application/json")]
BODY = json.dumps({"number": "5511999998888", "text": "bench"}).encode()


def cpu_per_send(exchange: Exchange, sends: int) -> float:
    """Microseconds of this process's CPU per sendText exchange."""
    exchange.exchange("POST", "/message/sendText/inst-a", BODY, key="inst-a")  # connect
    started = time.process_time()
    for _ in range(sends):
        answer = exchange.exchange("POST", "/message/sendText/inst-a", BODY, key="inst-a")
        assert answer.status == 201
    return (time.process_time() - started) / sends * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sim = subprocess.Popen(
        [sys.executable, "-m", "bench.simulator", "inst-a"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    url = sim.stdout.readline().strip().removeprefix("url=")
    timeouts = Timeouts(connect=5.0, read=15.0)
    clients: dict[str, Callable[[], Exchange]] = {
        "http.client (KeepAliveHTTP)": lambda: KeepAliveHTTP(url, HEADERS, timeouts),
        "httpx (HTTPTransport)": lambda: HttpxExchange(
            url, HEADERS, httpx.Timeout(15.0, connect=5.0), httpx.HTTPTransport()
        ),
    }
    figures: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for _ in range(args.rounds):
            for name, make in clients.items():
                exchange = make()
                figures[name].append(cpu_per_send(exchange, args.sends))
                exchange.close()
    finally:
        assert sim.stdin is not None
        sim.stdin.close()
        sim.wait(10)
    medians = {name: statistics.median(values) for name, values in figures.items()}
    for name, values in figures.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:32} {medians[name]:6.0f} µs CPU per send (rounds: {shown})")
    ours, theirs = medians.values()
    print(f"ratio http.client / httpx: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
