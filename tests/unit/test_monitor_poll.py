"""fetchInstances first, concurrent connectionState probes as the fallback (MockTransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from worker.evolution import AsyncEvolutionClient, EvolutionError, InstanceState
from worker.monitor.poll import PollMode, PollPolicy, PollResult, poll_states

Handler = Callable[[httpx.Request], Coroutine[Any, Any, httpx.Response]]
POLICY = PollPolicy(timeout_seconds=0.3, hedge_seconds=0.05)
HANG_SECONDS = 30.0  # how long a hung fake endpoint would wait (cancelled long before)


def record(name: str, state: str, code: int | None = None) -> dict[str, object]:
    return {
        "name": name,
        "connectionStatus": state,
        "disconnectionReasonCode": code,
        "number": "5511999998888",
    }


def run(handler: Handler, names: list[str]) -> tuple[PollResult, float]:
    async def go() -> PollResult:
        client = AsyncEvolutionClient(
            "http://evo.test", "k", transport=httpx.MockTransport(handler)
        )
        async with client:
            return await poll_states(client, names, POLICY)

    started = time.monotonic()
    result = asyncio.run(go())
    return result, time.monotonic() - started


def state_handler(
    hung: set[str], fetch_status: int | None = None, fetch_hangs: bool = False
) -> Handler:
    async def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/instance/fetchInstances":
            if fetch_hangs:
                await asyncio.sleep(HANG_SECONDS)
            if fetch_status is not None:
                return httpx.Response(fetch_status, json={"status": fetch_status})
            return httpx.Response(
                200,
                json=[record("a", "open"), record("b", "close", 403), record("stranger", "open")],
            )
        name = path.rsplit("/", 1)[-1]
        if name in hung:
            await asyncio.sleep(HANG_SECONDS)
        if name == "missing":
            return httpx.Response(404, json={"status": 404})
        return httpx.Response(200, json={"instance": {"instanceName": name, "state": "open"}})

    return handle


def test_fetch_instances_is_one_call_with_reasons() -> None:
    result, _ = run(state_handler(set()), ["a", "b", "c"])
    assert result.mode is PollMode.FETCH
    states = result.states
    assert states["b"] == InstanceState("b", "close", 403, "5511999998888")
    assert "c" not in states and "stranger" not in states


def test_refused_fetch_falls_back_to_probes() -> None:
    result, _ = run(state_handler(set(), fetch_status=401), ["a", "missing"])
    assert result.mode is PollMode.PER_INSTANCE
    states = result.states
    assert isinstance(states["a"], InstanceState) and states["a"].state == "open"
    assert isinstance(states["missing"], EvolutionError)
    assert states["missing"].status_code == 404
    assert "401" in (result.fetch_error or "")


def test_hung_fetch_and_hung_probes_cost_about_one_timeout() -> None:
    names = [f"i{n}" for n in range(50)]
    hung = set(names[:10])
    result, elapsed = run(state_handler(hung, fetch_hangs=True), names)
    assert result.mode is PollMode.PER_INSTANCE
    states = result.states
    assert sum(isinstance(s, EvolutionError) for s in states.values()) == 10
    assert sum(isinstance(s, InstanceState) for s in states.values()) == 40
    assert elapsed < POLICY.hedge_seconds + 2 * POLICY.timeout_seconds


def test_queued_probes_are_not_failed_for_waiting_behind_hung_ones() -> None:
    names = [f"i{n}" for n in range(50)]
    policy = PollPolicy(timeout_seconds=0.3, hedge_seconds=0.05, max_concurrency=12)

    async def go() -> PollResult:
        transport = httpx.MockTransport(state_handler(set(names[:10]), fetch_status=404))
        async with AsyncEvolutionClient("http://evo.test", "k", transport=transport) as client:
            return await poll_states(client, names, policy)

    states = asyncio.run(go()).states
    assert sum(isinstance(s, InstanceState) for s in states.values()) == 40
