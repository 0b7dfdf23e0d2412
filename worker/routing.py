"""Sticky routing policy: which instances a message may use, in what order.

Pure: no Celery, no I/O, no clock. The caller passes the contact's preferred instance,
the routable instances, and `now`; the limiter then reserves a slot on the first candidate
that fits (the preferred one first when `strict` is 1, the rest least-loaded first).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from models.enums import InstanceStatus
from models.views import CircuitState, InstanceView
from worker.breaker import BreakerPolicy
from worker.limiter import Candidate


class FallbackReason(StrEnum):
    NEW_CONTACT = "new_contact"
    PREFERRED_UNAVAILABLE = "preferred_unavailable"  # offline, banned, inactive or unknown
    PREFERRED_CIRCUIT_OPEN = "preferred_circuit_open"
    PREFERRED_FAILING = "preferred_failing"  # this message failed on it more than once


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Candidates in preference order; the first `strict` are tried in exactly that order."""

    candidates: tuple[Candidate, ...]
    strict: int
    preferred: str | None
    fallback: FallbackReason | None
    waiting_for_preferred: bool = False
    #: The strict head plus the candidates without a recent send failure, when some others
    #: have one (breaker still closed): offered first, the others only when these are full.
    first_choice: tuple[Candidate, ...] | None = None

    @property
    def empty(self) -> bool:
        return not self.candidates


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """The instance list sorted for routing once, then used for many decisions.

    `ready`: candidates of active, connected instances under the breaker threshold: first
    those without a send failure since their last success (`healthy_names`), then those
    with some. `tripped`: active, connected instances at or over it, whose breaker is open
    or half-open depending on `now`. A decision then costs O(tripped), not O(instances): at
    1,000 instances, rebuilding this per message was most of the routing time (measured by
    `python -m bench.compare --only routing_1000`).
    `usable(now, breaker)` is therefore the online instances (`worker.breaker.is_online`),
    computed in two steps; tests/unit/test_routing.py checks that they agree.
    """

    known: Mapping[str, InstanceView]
    ready: tuple[Candidate, ...]
    ready_names: frozenset[str]
    healthy_names: frozenset[str]
    tripped: tuple[InstanceView, ...]

    def usable(self, now: float, breaker: BreakerPolicy) -> tuple[Candidate, ...]:
        """Candidates whose breaker is not open at `now` (unix seconds): ready ones first."""
        half_open = tuple(
            candidate(i) for i in self.tripped if breaker.circuit(i, now) is not CircuitState.OPEN
        )
        return self.ready + half_open if half_open else self.ready


def routing_table(instances: Sequence[InstanceView], breaker: BreakerPolicy) -> RoutingTable:
    healthy: list[Candidate] = []
    failing: list[Candidate] = []
    tripped: list[InstanceView] = []
    for instance in instances:
        if not (instance.active and instance.connected):
            continue
        if instance.consecutive_failures == 0:
            healthy.append(candidate(instance))
        elif instance.consecutive_failures < breaker.failure_threshold:
            failing.append(candidate(instance))
        else:
            tripped.append(instance)
    return RoutingTable(
        known={i.name: i for i in instances},
        ready=(*healthy, *failing),
        ready_names=frozenset(c.name for c in (*healthy, *failing)),
        healthy_names=frozenset(c.name for c in healthy),
        tripped=tuple(tripped),
    )


@dataclass(frozen=True, slots=True)
class RouteRequest:
    preferred: str | None
    instances: Sequence[InstanceView]
    now: float
    message_age_seconds: float = 0.0
    sticky_patience_seconds: float = 0.0
    demote: str | None = None  # the instance this message just failed on, tried last
    table: RoutingTable | None = None  # `routing_table(instances)`, when the caller keeps one


def demoted_instance(instance: str | None, attempts: int, last_error: str | None) -> str | None:
    """The instance a message is tried on last: the one it failed on, once it has failed
    there more than once (two attempts and an error kept); None otherwise."""
    return instance if attempts >= 2 and last_error else None


def plan_route(request: RouteRequest, breaker: BreakerPolicy) -> RoutePlan:
    """Sticky first; otherwise every available instance, least-loaded first (by the limiter)."""
    table = request.table or routing_table(request.instances, breaker)
    usable = table.usable(request.now, breaker)
    names = _names(table, usable)
    preferred = request.preferred
    if preferred is not None and preferred in names and preferred != request.demote:
        return _sticky(preferred, usable, request, table)
    if _patient(request, table):
        return RoutePlan((), 0, preferred, None, waiting_for_preferred=True)
    ordered = _ordered(usable, request.demote)
    return RoutePlan(
        ordered,
        0,
        preferred,
        _fallback_reason(request, table, names),
        first_choice=_first_choice((), ordered, table),
    )


def _names(table: RoutingTable, usable: tuple[Candidate, ...]) -> frozenset[str]:
    if len(usable) == len(table.ready):
        return table.ready_names
    return table.ready_names | {c.name for c in usable[len(table.ready) :]}


def _sticky(
    preferred: str, usable: tuple[Candidate, ...], request: RouteRequest, table: RoutingTable
) -> RoutePlan:
    first = next(c for c in usable if c.name == preferred)
    if request.message_age_seconds < request.sticky_patience_seconds:
        return RoutePlan((first,), 1, preferred, None)
    rest = _ordered(tuple(c for c in usable if c.name != preferred), request.demote)
    return RoutePlan(
        (first, *rest), 1, preferred, None, first_choice=_first_choice((first,), rest, table)
    )


def _first_choice(
    head: tuple[Candidate, ...], rest: tuple[Candidate, ...], table: RoutingTable
) -> tuple[Candidate, ...] | None:
    """`head` plus the instances of `rest` without a send failure since their last success,
    when `rest` has both kinds: a number that just failed (its breaker not open yet) would
    otherwise look least loaded, having handed its slots back, and draw new contacts."""
    if len(table.healthy_names) == len(table.ready) and not table.tripped:
        return None  # every instance is healthy: the common case, decided in O(1)
    if table.healthy_names.issuperset(c.name for c in rest):
        return None
    healthy = tuple(c for c in rest if c.name in table.healthy_names)
    return head + healthy if healthy else None


def _patient(request: RouteRequest, table: RoutingTable) -> bool:
    """Wait for a preferred instance that is only temporarily away (not banned, not retired)."""
    if request.preferred is None or request.message_age_seconds >= request.sticky_patience_seconds:
        return False
    pref = table.known.get(request.preferred)
    return pref is not None and pref.active and pref.status is not InstanceStatus.BANNED


def _ordered(usable: tuple[Candidate, ...], demote: str | None) -> tuple[Candidate, ...]:
    """Given order, with the instance that just failed this message moved to the end."""
    if demote is None:
        return usable
    return tuple(sorted(usable, key=lambda c: c.name == demote))


def _fallback_reason(
    request: RouteRequest, table: RoutingTable, usable_names: frozenset[str]
) -> FallbackReason:
    if request.preferred is None:
        return FallbackReason.NEW_CONTACT
    if request.preferred == request.demote and request.preferred in usable_names:
        return FallbackReason.PREFERRED_FAILING
    pref = table.known.get(request.preferred)
    if pref is not None and pref.connected:
        return FallbackReason.PREFERRED_CIRCUIT_OPEN
    return FallbackReason.PREFERRED_UNAVAILABLE


def candidate(instance: InstanceView) -> Candidate:
    return Candidate(instance.name, instance.hourly_cap, instance.daily_cap)
