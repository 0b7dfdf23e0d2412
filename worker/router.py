"""Routing one message, with this worker's caches: the plan (worker/routing.py
`plan_route`) and a slot reserved on it.

Every routing choice the dispatcher relies on lives here or in worker/routing.py: which
instances are routable now (pauses, warm-up caps), the demote rule, the routing table kept
per snapshot, and the first-choice reservation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from config import Settings
from models.instance_store import InstanceStore
from models.views import InstanceView, MessageView
from worker.breaker import BreakerPolicy
from worker.limiter import Limiter, NoCapacity, Reservation
from worker.pauses import PauseBoard
from worker.phones import mask_id
from worker.policy.pauses import PauseSet
from worker.policy.warmup import local_day, warmed
from worker.routing import (
    RoutePlan,
    RouteRequest,
    RoutingTable,
    demoted_instance,
    plan_route,
    routing_table,
)

log = logging.getLogger("zapdispatch.delivery")


class Router:
    """Plans routes and reserves slots on them; one per worker process (thread-safe: its
    caches are replaced whole, never mutated)."""

    def __init__(
        self,
        settings: Settings,
        instances: InstanceStore,
        limiter: Limiter,
        pauses: PauseBoard | None = None,
    ) -> None:
        self._s = settings
        self._instances = instances
        self._limiter = limiter
        self._pauses = pauses
        self.breaker = BreakerPolicy.from_settings(settings)
        self._table: tuple[Sequence[InstanceView], RoutingTable] | None = None
        self._unpaused: (
            tuple[Sequence[InstanceView], PauseSet | None, Sequence[InstanceView], int] | None
        ) = None

    def plan(self, message: MessageView, preferred: str | None, now: float) -> RoutePlan:
        """The route of `message` at `now` (unix seconds), `preferred` being its contact's
        sticky instance as known."""
        instances = self._routable(self._instances.snapshot(), now)
        request = RouteRequest(
            preferred=preferred,
            instances=instances,
            now=now,
            message_age_seconds=now - message.created_at.timestamp(),
            sticky_patience_seconds=self._s.sticky_patience_seconds,
            demote=demoted_instance(message.instance, message.attempts, message.last_error),
            table=self._routing_table(instances),
        )
        return plan_route(request, self.breaker)

    def reserve(self, plan: RoutePlan, phone: str) -> Reservation | NoCapacity:
        """A slot on the plan's first choice (instances without recent send failures); on
        the others only when the first choice is over its caps. Waiting out a pacing or
        recipient gap is better than handing a new contact to a number that is failing."""
        if plan.first_choice is not None:
            first = self._limiter.reserve(plan.first_choice, phone=phone, strict=plan.strict)
            if isinstance(first, Reservation) or first.reason != "caps":
                return first
        return self._limiter.reserve(plan.candidates, phone=phone, strict=plan.strict)

    def patience_only(self, plan: RoutePlan) -> bool:
        """True when the plan holds only the preferred instance because of sticky patience."""
        return (
            plan.strict == 1 and len(plan.candidates) == 1 and self._s.sticky_patience_seconds > 0
        )

    @staticmethod
    def label(message: MessageView, plan: RoutePlan, instance: str) -> str:
        """How `instance` was chosen, for the send's log line; a fallback is also logged
        now, as a warning, whatever becomes of the send."""
        if plan.preferred is None:
            return "new contact: least-loaded instance"
        if instance == plan.preferred:
            return "sticky instance"
        why = plan.fallback.value if plan.fallback else "preferred over its cap"
        log.warning(
            "fallback: contact %s moved from %s to %s (%s)",
            mask_id(message.contact_id),
            plan.preferred,
            instance,
            why,
        )
        return f"fallback from {plan.preferred}: {why}"

    def _routable(self, instances: Sequence[InstanceView], now: float) -> Sequence[InstanceView]:
        """The snapshot without paused instances, with warm-up caps (WARMUP_SCHEDULE) in
        place of the own ones; the same object while none of that changes, so the routing
        table built from it is kept."""
        pauses = self._pauses.current() if self._pauses is not None else None
        ramp = self._s.warmup_ramp
        if (pauses is None or not pauses.instances) and not ramp:
            return instances
        day = local_day(now, self._s.zone) if ramp else 0
        last = self._unpaused
        if last is not None and last[0] is instances and last[1] is pauses and last[3] == day:
            return last[2]
        kept = [i for i in instances if pauses is None or i.name not in pauses.instances]
        routable = warmed(kept, now, ramp, self._s.zone) if ramp else tuple(kept)
        self._unpaused = (instances, pauses, routable, day)
        return routable

    def _routing_table(self, instances: Sequence[InstanceView]) -> RoutingTable:
        """The routing table of this snapshot: built when the snapshot is replaced, so once
        a second at most (worker/resources.py ROUTING_SNAPSHOT_SECONDS)."""
        last = self._table
        if last is not None and last[0] is instances:
            return last[1]
        table = routing_table(instances, self.breaker)
        self._table = (instances, table)
        return table
