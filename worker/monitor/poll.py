"""Read every instance's connection state from Evolution, at the cost of about one timeout.

`fetchInstances` answers for all instances in one call and is the only endpoint that
carries the disconnection reason (so the only way to see a ban). But its rows are database
values: `connectionStatus` stays `open` while a session auto-reconnects (a close with any
code but 401, 402, 403 and 406), and with an instance's own key (not the global one) it
lists only that key's instances. So a row is taken as it is only when it is not `open` (a
`close` there is a permanent close, with its reason); an instance listed `open`, or not
listed at all, is asked with `connectionState` (live, from memory), and that answer wins.
Absence from the listing is never read as "unknown to Evolution": only a 404 from
`connectionState` is.

If fetchInstances fails (401/403/404, 5xx, bad body) the per-instance probes start at once;
if it merely has not answered within `hedge_seconds`, the probes start alongside it. The
probes run concurrently (at most `max_concurrency` in flight), each bounded by
`timeout_seconds`, so 100 instances of which 20 hang cost about `hedge_seconds +
timeout_seconds`, not 20 timeouts.

Evolution's licence gate (503 `LICENSE_REQUIRED`, from 2.4) answers every call the same
way: it says nothing about any instance. A poll that meets it reports `licence_required`
and no states, so that no status changes because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from worker.evolution import (
    EvolutionError,
    EvolutionLicenceRequired,
    InstanceState,
    TransientEvolutionError,
)

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
    """States by instance name: a state, or the error of its probe (a 404: unknown to
    Evolution). `mode` says whether fetchInstances answered. With `licence_required` (the
    licence gate answered) `states` is empty: nothing was learnt about any instance."""

    mode: PollMode
    states: Mapping[str, ProbeResult]
    fetch_error: str | None = None
    licence_required: bool = False


class StateSource(Protocol):
    """The part of `AsyncEvolutionClient` the poll uses."""

    async def fetch_instances(self) -> list[InstanceState]: ...

    async def connection_state(self, instance: str) -> InstanceState: ...


async def poll_states(source: StateSource, names: Sequence[str], policy: PollPolicy) -> PollResult:
    """Every named instance's state: fetchInstances' rows that are not `open`, and
    connectionState for the rest (for every name when fetchInstances fails)."""
    fetch = asyncio.create_task(_fetch(source, policy.timeout_seconds))
    done, _ = await asyncio.wait({fetch}, timeout=policy.hedge_seconds)
    if done:
        fetched = fetch.result()
        if isinstance(fetched, EvolutionLicenceRequired):
            return PollResult(PollMode.FETCH, {}, str(fetched), licence_required=True)
        if isinstance(fetched, list):
            probed = await probe_each(source, to_confirm(fetched, names), policy)
            return _result(PollMode.FETCH, _merge(fetched, probed, names))
    probes = asyncio.create_task(probe_each(source, names, policy))
    if not done:
        await asyncio.wait({fetch, probes}, return_when=asyncio.FIRST_COMPLETED)
    states = await probes
    late = fetch.result() if fetch.done() else None
    await _cancel(fetch)
    if isinstance(late, list):
        return _result(PollMode.FETCH, _merge(late, states, names))
    error = str(late) if isinstance(late, EvolutionError) else "no answer yet"
    return _result(PollMode.PER_INSTANCE, states, error)


def to_confirm(records: Sequence[InstanceState], names: Sequence[str]) -> list[str]:
    """The names fetchInstances cannot settle: listed `open` (a database value, maybe stale)
    or not listed at all (an instance key lists only its own instances)."""
    listed = {record.name: record.state for record in records}
    return [name for name in dict.fromkeys(names) if listed.get(name, "open") == "open"]


def _merge(
    records: Sequence[InstanceState], probed: Mapping[str, ProbeResult], names: Sequence[str]
) -> dict[str, ProbeResult]:
    """A listed row that is not `open` as it is; connectionState's answer for the rest."""
    merged: dict[str, ProbeResult] = {}
    listed = {record.name: record for record in records}
    for name in dict.fromkeys(names):
        record = listed.get(name)
        if record is not None and (record.state != "open" or name not in probed):
            merged[name] = record
        else:
            merged[name] = probed[name]
    return merged


def _result(
    mode: PollMode, states: Mapping[str, ProbeResult], fetch_error: str | None = None
) -> PollResult:
    if any(isinstance(state, EvolutionLicenceRequired) for state in states.values()):
        return PollResult(mode, {}, fetch_error, licence_required=True)
    return PollResult(mode, states, fetch_error)


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


async def _cancel(task: asyncio.Task[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
