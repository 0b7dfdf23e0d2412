"""Recording a new message, claimed at once when the sticky cache allows (the fast path).

A new message is routed on its contact's sticky instance as this worker last saw it
(worker/sticky_cache.py), then recorded already claimed for the reserved instance
(`MessageStore.accept_claiming`: one statement instead of `accept` and a claim), which
checks that sticky instance in the database. When the check fails, no slot is free, or the
cache advises against guessing about an unknown contact, the message is recorded `queued`
and the dispatcher's usual path takes over. This class is the only user of the sticky
cache: everything else tells it what it saw (`saw`).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.enums import MessageState
from models.message_store import Accepted, MessageStore, NewMessage
from models.message_values import new_message_view
from models.views import MessageView, to_datetime
from worker.holds import Holds
from worker.limiter import Limiter, NoCapacity, Reservation
from worker.router import Router
from worker.routing import RoutePlan
from worker.sticky_cache import StickyCache


@dataclass(frozen=True, slots=True)
class Claimed:
    """Recorded `sending` on the slot's instance: send it."""

    message: MessageView
    plan: RoutePlan
    slot: Reservation


@dataclass(frozen=True, slots=True)
class NoSlot:
    """Recorded `queued` with no slot free on a plan that holds: wait for capacity."""

    message: MessageView
    plan: RoutePlan
    full: NoCapacity


class FirstSend:
    """Records new messages, claiming them in the same statement when it can."""

    def __init__(
        self,
        messages: MessageStore,
        router: Router,
        limiter: Limiter,
        holds: Holds,
        sticky: StickyCache | None = None,
    ) -> None:
        self._messages = messages
        self._router = router
        self._limiter = limiter
        self._holds = holds
        self._preferences = sticky if sticky is not None else StickyCache()

    def record(self, new: NewMessage) -> Claimed | NoSlot | Accepted:
        """Record `new`: claimed (`Claimed`), queued with no slot (`NoSlot`), or queued for
        the usual path (`Accepted`, also when its key names an existing message). Raises
        IdempotencyConflict when its key names a different message."""
        seen = self._preferences.get(new.contact_id)
        if self._holds.holds_new(new.campaign, new.phone):
            return self._accept(new, seen)  # recorded, then parked or stopped
        if seen is None and not self._preferences.guess_unknown_are_new():
            return self._accept(new, seen)
        message = new_message_view(new)
        plan = self._router.plan(message, seen, self._limiter.now())
        if plan.waiting_for_preferred or plan.empty:
            return self._accept(new, seen)
        reserved = self._router.reserve(plan, new.phone)
        if isinstance(reserved, NoCapacity):
            return self._no_slot(new, plan, reserved)
        return self._accept_claiming(new, plan, reserved)

    def saw(self, contact_id: str | None, preferred: str | None) -> None:
        """The contact's sticky instance as the database said (or this worker made it)."""
        if contact_id is not None:
            self._preferences.put(contact_id, preferred)

    def _accept_claiming(
        self, new: NewMessage, plan: RoutePlan, slot: Reservation
    ) -> Claimed | Accepted:
        try:
            accepted = self._messages.accept_claiming(
                new, slot.instance, seen=plan.preferred, claimed_at=to_datetime(slot.now)
            )
        except BaseException:
            self._limiter.release(slot)
            raise
        if plan.preferred is None:
            self._learn_unknown(accepted)
        routing = accepted.routing
        if routing is not None and routing.message.state is MessageState.SENDING:
            return Claimed(routing.message, plan, slot)
        self._limiter.release(slot)  # the sticky instance moved meanwhile, or not ours
        return accepted

    def _no_slot(self, new: NewMessage, plan: RoutePlan, full: NoCapacity) -> NoSlot | Accepted:
        """No slot for a new message: record it; it waits unless it was routed on a stale
        preference (then the usual path routes it again)."""
        accepted = self._accept(new, plan.preferred)
        routing = accepted.routing
        if routing is None or routing.preferred_instance != plan.preferred:
            return accepted
        return NoSlot(routing.message, plan, full)

    def _accept(self, new: NewMessage, seen: str | None) -> Accepted:
        """Record `new` `queued` (no slot yet); the database's answer teaches the cache."""
        accepted = self._messages.accept(new)
        if seen is None:
            self._learn_unknown(accepted)
        return accepted

    def _learn_unknown(self, accepted: Accepted) -> None:
        """Tell the sticky cache whether a contact it did not know was new to the database."""
        if accepted.routing is not None:
            self._preferences.learn_unknown(was_new=accepted.contact_was_new)
