"""Sticky routing policy (S6.E2.1, S6.E2.2): which instances a message may use, in what order.

Pure: no Celery, no I/O, no clock. The caller passes the contact's preferred instance,
the routable instances, and `now`; the limiter then reserves a slot on the first candidate
that fits (the preferred one first when `strict` is 1, the rest least-loaded first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from models.enums import InstanceStatus
from models.views import CircuitState, InstanceView
from worker.limiter import Candidate


class FallbackReason(StrEnum):
    NEW_CONTACT = "new_contact"
    PREFERRED_UNAVAILABLE = "preferred_unavailable"  # offline, banned, inactive or unknown
    PREFERRED_CIRCUIT_OPEN = "preferred_circuit_open"
    PREFERRED_FAILING = "preferred_failing"  # this message failed on it more than once


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failure_threshold: int
    cooldown_seconds: float


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Candidates in preference order; the first `strict` are tried in exactly that order."""

    candidates: tuple[Candidate, ...]
    strict: int
    preferred: str | None
    fallback: FallbackReason | None
    waiting_for_preferred: bool = False

    @property
    def empty(self) -> bool:
        return not self.candidates


@dataclass(frozen=True, slots=True)
class RouteRequest:
    preferred: str | None
    instances: Sequence[InstanceView]
    now: float
    message_age_seconds: float = 0.0
    sticky_patience_seconds: float = 0.0
    demote: str | None = None  # the instance this message just failed on, tried last


def available(
    instances: Sequence[InstanceView], now: float, breaker: BreakerPolicy
) -> list[InstanceView]:
    """Active, connected instances whose breaker is not open at `now` (unix seconds)."""
    return [
        i
        for i in instances
        if i.active
        and i.connected
        and i.circuit(
            now, threshold=breaker.failure_threshold, cooldown_seconds=breaker.cooldown_seconds
        )
        is not CircuitState.OPEN
    ]


def plan_route(request: RouteRequest, breaker: BreakerPolicy) -> RoutePlan:
    """Sticky first; otherwise every available instance, least-loaded first (by the limiter)."""
    usable = available(request.instances, request.now, breaker)
    names = {i.name for i in usable}
    preferred = request.preferred
    if preferred is not None and preferred in names and preferred != request.demote:
        return _sticky(preferred, usable, request)
    if _patient(request):
        return RoutePlan((), 0, preferred, None, waiting_for_preferred=True)
    return RoutePlan(
        _ordered(usable, request.demote), 0, preferred, _fallback_reason(request, names)
    )


def _sticky(preferred: str, usable: Sequence[InstanceView], request: RouteRequest) -> RoutePlan:
    first = next(i for i in usable if i.name == preferred)
    if request.message_age_seconds < request.sticky_patience_seconds:
        return RoutePlan((candidate(first),), 1, preferred, None)
    rest = [i for i in usable if i.name != preferred]
    return RoutePlan((candidate(first), *_ordered(rest, request.demote)), 1, preferred, None)


def _patient(request: RouteRequest) -> bool:
    """Wait for a preferred instance that is only temporarily away (not banned, not retired)."""
    if request.preferred is None or request.message_age_seconds >= request.sticky_patience_seconds:
        return False
    known = {i.name: i for i in request.instances}
    pref = known.get(request.preferred)
    return pref is not None and pref.active and pref.status is not InstanceStatus.BANNED


def _ordered(instances: Sequence[InstanceView], demote: str | None) -> tuple[Candidate, ...]:
    """Given order, with the instance that just failed this message moved to the end."""
    ordered = sorted(instances, key=lambda i: i.name == demote)
    return tuple(candidate(i) for i in ordered)


def _fallback_reason(request: RouteRequest, usable_names: set[str]) -> FallbackReason:
    if request.preferred is None:
        return FallbackReason.NEW_CONTACT
    if request.preferred == request.demote and request.preferred in usable_names:
        return FallbackReason.PREFERRED_FAILING
    known = {i.name: i for i in request.instances}
    if request.preferred in known and known[request.preferred].connected:
        return FallbackReason.PREFERRED_CIRCUIT_OPEN
    return FallbackReason.PREFERRED_UNAVAILABLE


def candidate(instance: InstanceView) -> Candidate:
    return Candidate(instance.name, instance.hourly_cap, instance.daily_cap)
