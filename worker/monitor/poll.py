"""Read every instance's connection state from Evolution, at the cost of about one timeout.

`fetchInstances` answers for all instances in one call and is the only endpoint that
carries the disconnection reason (so the only way to see a ban). It is tried first. If it
fails (401/403/404 when the key is not the global one, 5xx, bad body) the per-instance
`connectionState` probes start at once; if it merely has not answered within
`hedge_seconds`, the probes start alongside it and whichever finishes first wins. The
probes run concurrently (at most `max_concurrency` in flight), each bounded by
`timeout_seconds`, so 100 instances of which 20 hang cost about `hedge_seconds +
timeout_seconds`, not 20 timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from worker.evolution import EvolutionError, InstanceState, TransientEvolutionError

ProbeResult = InstanceState | EvolutionError


class PollMode(StrEnum):
    FETCH = "fetch_instances"
    PER_INSTANCE = "connection_state"


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """`timeout_seconds` bounds each call; `hedge_seconds` is how long fetchInstances runs
    alone before the per-instance probes start too; at most `max_concurrency` probes are in
    flight (each probe's timeout starts when it gets its slot, so a queued probe is never
    failed for waiting behind hung ones)."""

    timeout_seconds: float = 10.0
    hedge_seconds: float = 1.0
    max_concurrency: int = 500


@dataclass(frozen=True, slots=True)
class PollResult:
    """States by instance name. A name absent from `states` is unknown to Evolution (fetch
    mode); a failed probe maps to its error (per-instance mode)."""

    mode: PollMode
    states: Mapping[str, ProbeResult]
    fetch_error: str | None = None


class StateSource(Protocol):
    """The part of `AsyncEvolutionClient` the poll uses."""

    async def fetch_instances(self) -> list[InstanceState]: ...

    async def connection_state(self, instance: str) -> InstanceState: ...


async def poll_states(source: StateSource, names: Sequence[str], policy: PollPolicy) -> PollResult:
    """Every named instance's state: fetchInstances if it answers, else concurrent probes."""
    fetch = asyncio.create_task(_fetch(source, policy.timeout_seconds))
    done, _ = await asyncio.wait({fetch}, timeout=policy.hedge_seconds)
    if done and isinstance(records := fetch.result(), list):
        return _from_fetch(records, names)
    probes = asyncio.create_task(probe_each(source, names, policy))
    if not done:
        await asyncio.wait({fetch, probes}, return_when=asyncio.FIRST_COMPLETED)
        if fetch.done() and isinstance(records := fetch.result(), list):
            await _cancel(probes)
            return _from_fetch(records, names)
    states = await probes
    error = _describe(fetch.result()) if fetch.done() else "no answer yet"
    await _cancel(fetch)
    return PollResult(PollMode.PER_INSTANCE, states, fetch_error=error)


async def _fetch(
    source: StateSource, timeout_seconds: float
) -> list[InstanceState] | EvolutionError:
    try:
        return await asyncio.wait_for(source.fetch_instances(), timeout_seconds)
    except TimeoutError:
        return TransientEvolutionError(f"fetchInstances: no answer within {timeout_seconds} s")
    except EvolutionError as exc:
        return exc


async def probe_each(
    source: StateSource, names: Sequence[str], policy: PollPolicy
) -> dict[str, ProbeResult]:
    """connectionState of every name, concurrently (bounded), failures returned as values."""
    gate = asyncio.Semaphore(policy.max_concurrency)

    async def probe(name: str) -> ProbeResult:
        async with gate:
            return await _probe(source, name, policy.timeout_seconds)

    unique = list(dict.fromkeys(names))
    results = await asyncio.gather(*(probe(name) for name in unique))
    return dict(zip(unique, results, strict=True))


async def _probe(source: StateSource, name: str, timeout_seconds: float) -> ProbeResult:
    try:
        return await asyncio.wait_for(source.connection_state(name), timeout_seconds)
    except TimeoutError:
        message = f"connectionState of {name!r}: no answer within {timeout_seconds} s"
        return TransientEvolutionError(message, instance=name)
    except EvolutionError as exc:
        return exc


def _from_fetch(records: list[InstanceState], names: Sequence[str]) -> PollResult:
    by_name = {record.name: record for record in records}
    states: dict[str, ProbeResult] = {n: by_name[n] for n in names if n in by_name}
    return PollResult(PollMode.FETCH, states)


def _describe(result: list[InstanceState] | EvolutionError) -> str | None:
    return str(result) if isinstance(result, EvolutionError) else None


async def _cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
