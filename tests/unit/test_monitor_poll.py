"""fetchInstances first, concurrent connectionState probes as the fallback (MockTransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from worker.evolution import AsyncEvolutionClient, EvolutionError, InstanceState
from worker.evolution.bodies import NOT_LOADED
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


def test_fetch_instances_gives_the_reasons_and_absence_is_asked_not_assumed() -> None:
    result, _ = run(state_handler(set()), ["a", "b", "missing"])
    assert result.mode is PollMode.FETCH
    states = result.states
    assert states["b"] == InstanceState("b", "close", 403, "5511999998888")
    assert "stranger" not in states
    missing = states["missing"]  # not listed: connectionState answered 404
    assert isinstance(missing, EvolutionError) and missing.status_code == 404


def live_handler(
    live: dict[str, dict[str, object]], listed: list[dict[str, object]], asked: list[str]
) -> Handler:
    """fetchInstances lists `listed` (database rows); connectionState answers `live[name]`
    as its `instance` object (404 for names not in `live`); `asked` collects probed names."""

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/instance/fetchInstances":
            return httpx.Response(200, json=listed)
        name = request.url.path.rsplit("/", 1)[-1]
        asked.append(name)
        if name not in live:
            return httpx.Response(404, json={"status": 404, "error": "Not Found"})
        return httpx.Response(200, json={"instance": {"instanceName": name, **live[name]}})

    return handle


def test_an_open_row_is_confirmed_by_connection_state_which_wins() -> None:
    """Database rows stay `open` during auto-reconnect: the live state wins; a row that is
    not `open` (a permanent close, with its reason) is taken as it is, without a probe."""
    listed = [record("a", "open"), record("b", "close", 403), record("c", "open", 428)]
    live: dict[str, dict[str, object]] = {"a": {"state": "connecting"}, "c": {"state": "open"}}
    asked: list[str] = []
    result, _ = run(live_handler(live, listed, asked), ["a", "b", "c"])
    assert result.mode is PollMode.FETCH
    assert result.states["a"] == InstanceState("a", "connecting", None, None)
    assert result.states["b"] == InstanceState("b", "close", 403, "5511999998888")
    assert result.states["c"] == InstanceState("c", "open", None, None)
    assert sorted(asked) == ["a", "c"]


def test_an_instance_keys_partial_listing_is_not_unknown() -> None:
    """With an instance's own key fetchInstances lists only that key's instances: the others
    are asked one by one, and only connectionState's 404 makes one unknown."""
    live: dict[str, dict[str, object]] = {"mine": {"state": "open"}, "other": {"state": "open"}}
    asked: list[str] = []
    result, _ = run(live_handler(live, [record("mine", "open")], asked), ["mine", "other"])
    assert result.states["other"] == InstanceState("other", "open", None, None)
    assert sorted(asked) == ["mine", "other"]


def test_an_instance_not_loaded_in_memory_has_no_state() -> None:
    """connectionState of an instance in Evolution's database but not in memory: no `state`."""
    asked: list[str] = []
    live: dict[str, dict[str, object]] = {"idle": {}}
    result, _ = run(live_handler(live, [record("idle", "open")], asked), ["idle"])
    assert result.states["idle"] == InstanceState("idle", NOT_LOADED, None, None)


def gate_handler(probes_too: bool, asked: list[str]) -> Handler:
    """Evolution 2.4's licence gate on fetchInstances (and on the probes if `probes_too`)."""
    gate = {"error": "service not activated", "code": "LICENSE_REQUIRED", "message": "..."}

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/instance/fetchInstances":
            if not probes_too:
                return httpx.Response(503, json=gate)
            await asyncio.sleep(HANG_SECONDS)
        asked.append(request.url.path)
        return httpx.Response(503, json=gate)

    return handle


def test_the_licence_gate_reports_no_states_and_probes_nothing() -> None:
    asked: list[str] = []
    result, _ = run(gate_handler(False, asked), ["a", "b"])
    assert result.licence_required and result.states == {} and asked == []
    assert "LICENSE_REQUIRED" in (result.fetch_error or "")


def test_the_licence_gate_on_the_probes_reports_no_states() -> None:
    asked: list[str] = []
    result, _ = run(gate_handler(True, asked), ["a", "b"])
    assert result.mode is PollMode.PER_INSTANCE
    assert result.licence_required and result.states == {} and len(asked) == 2


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
