"""Delivery of one recorded message: route → reserve → claim → send → record.

A plain class with no Celery in it, read top to bottom in `_attempt` and
`_route_and_send`. It never holds a
database session across the HTTP call: each step is its own short transaction. Each step's
choices live with a collaborator: what stops or holds a message (worker/holds.py), routing
and reservation (worker/router.py over worker/routing.py), how a run ends or waits
(worker/outcomes.py, deciding with worker/waiting.py), sends whose outcome is unknown
(worker/unknown_sends.py), and the new message's fast path (worker/first_send.py).
"""

from __future__ import annotations

import logging
import random
import uuid

from config import Settings
from models.enums import MessageState
from models.instance_store import InstanceStore
from models.message_store import Accepted, ClaimOutcome, MessageStore, NewMessage, RoutingInput
from models.policy_store import PolicyStore
from models.views import MessageView, to_datetime
from worker.delivery_result import Delivered, Result, Scheduler, skipped
from worker.evolution import (
    EvolutionClient,
    EvolutionError,
    EvolutionLicenceRequired,
    PermanentRecipientError,
    RecipientNotOnWhatsApp,
    SendOutcomeUnknown,
)
from worker.first_send import Claimed, FirstSend, NoSlot
from worker.holds import Holds
from worker.limiter import Limiter, NoCapacity, Reservation
from worker.not_on_whatsapp import NotOnWhatsAppMemory
from worker.optout import OptOutGate
from worker.outcomes import Outcomes
from worker.pauses import PauseBoard
from worker.router import Router
from worker.routing import RoutePlan
from worker.sticky_cache import StickyCache
from worker.unknown_sends import UnknownSends

log = logging.getLogger("zapdispatch.delivery")

#: How many times a message is re-routed when its contact's sticky number moved meanwhile.
PREFERENCE_RACE_LIMIT = 3

__all__ = ["Delivered", "Dispatcher", "Result", "Scheduler", "skipped"]


class Dispatcher:
    """Delivers messages; one instance per worker process."""

    def __init__(
        self,
        settings: Settings,
        messages: MessageStore,
        instances: InstanceStore,
        limiter: Limiter,
        evolution: EvolutionClient,
        scheduler: Scheduler,
        rng: random.Random | None = None,
        sticky: StickyCache | None = None,
        optouts: OptOutGate | None = None,
        *,
        pauses: PauseBoard | None = None,
        policy: PolicyStore | None = None,
        memory: NotOnWhatsAppMemory | None = None,
    ) -> None:
        rng = rng or random.Random()
        self._messages = messages
        self._instances = instances
        self._limiter = limiter
        self._evolution = evolution
        self._typing_range = settings.typing_delay_range
        self._rng = rng
        self._router = Router(settings, instances, limiter, pauses)
        self._outcomes = Outcomes(settings, messages, instances, limiter, scheduler, rng)
        self._holds = Holds(
            settings,
            limiter,
            self._outcomes,
            rng,
            optouts=optouts,
            pauses=pauses,
            policy=policy,
            memory=memory,
        )
        self._unknown = UnknownSends(
            settings, messages, instances, evolution, scheduler, self._outcomes
        )
        self._first = FirstSend(messages, self._router, limiter, self._holds, sticky)

    def deliver_new(self, new: NewMessage) -> Delivered:
        """Record and deliver a message the producer just handed over; claimed in the same
        statement when this worker knows enough (worker/first_send.py). Raises
        IdempotencyConflict when its key names a different message."""
        recorded = self._first.record(new)
        if isinstance(recorded, Claimed):
            return self._send(recorded.message, recorded.plan, recorded.slot)
        if isinstance(recorded, NoSlot):
            return self._wait_for_capacity(recorded.message, recorded.plan, recorded.full)
        return self._deliver_recorded(recorded)

    def deliver(self, message_id: uuid.UUID, known: RoutingInput | None = None) -> Delivered:
        """Try once to send; every path ends in a recorded state or a scheduled retry.

        `known` is the message's routing input when the caller has just recorded it
        (`MessageStore.accept`); otherwise it is read from the database."""
        for _ in range(PREFERENCE_RACE_LIMIT):
            outcome = self._attempt(known or self._messages.routing_input(message_id))
            if outcome is not None:
                return outcome
            known = None  # the contact's sticky number moved meanwhile: read it again
        message = self._messages.get(message_id)
        return self._outcomes.requeue_soon(message, "sticky preference race")

    def _deliver_recorded(self, accepted: Accepted) -> Delivered:
        if not accepted.created:
            log.info("idempotency key reused: message %s already accepted", accepted.id)
        if accepted.state is not MessageState.QUEUED:
            return skipped(accepted)
        return self.deliver(accepted.id, accepted.routing)

    def _attempt(self, found: RoutingInput) -> Delivered | None:
        """One attempt; None: route it again (its contact's sticky number moved, or the
        reserved instance became unusable)."""
        message, now = found.message, self._limiter.now()
        self._first.saw(message.contact_id, found.preferred_instance)
        if message.state.terminal or message.state is MessageState.SENDING:
            return Delivered(Result.SKIPPED, detail=f"message is {message.state}")
        if found.unknown is not None:
            settled = self._unknown.settle(message, found.unknown, now)
            if settled is not None:
                return settled
        stopped_or_held = self._holds.stop_or_hold(message, now)
        if stopped_or_held is not None:
            return stopped_or_held
        return self._route_and_send(message, found.preferred_instance, now)

    def _route_and_send(
        self, message: MessageView, preferred: str | None, now: float
    ) -> Delivered | None:
        """Route → reserve → claim → send → record; None: route it again."""
        plan = self._router.plan(message, preferred, now)
        if plan.waiting_for_preferred:
            return self._outcomes.wait_for_preferred(message, now)
        if plan.empty:
            return self._outcomes.nothing_online(message)
        slot = self._router.reserve(plan, message.phone or "")
        if isinstance(slot, NoCapacity):
            return self._wait_for_capacity(message, plan, slot)
        claim = self._claim(message, plan, slot)
        if claim is not ClaimOutcome.CLAIMED:
            return self._not_claimed(claim, slot)
        return self._send(message, plan, slot)

    def _claim(self, message: MessageView, plan: RoutePlan, slot: Reservation) -> ClaimOutcome:
        return self._messages.claim(
            message.id,
            slot.instance,
            contact_id=message.contact_id,
            seen_preference=plan.preferred,
            now=to_datetime(slot.now),
        )

    def _not_claimed(self, claim: ClaimOutcome, slot: Reservation) -> Delivered | None:
        """The slot goes back. None: route again (the instance became unusable, or the
        contact's sticky number moved); else another worker has the message."""
        self._limiter.release(slot)
        if claim is ClaimOutcome.INSTANCE_UNUSABLE:
            self._instances.forget_snapshot()  # banned or deactivated since: route again
            return None
        if claim is ClaimOutcome.PREFERENCE_CHANGED:
            return None
        return Delivered(Result.SKIPPED, detail="claimed by another worker")

    def _send(self, message: MessageView, plan: RoutePlan, slot: Reservation) -> Delivered:
        """Send a message this worker has claimed, then record the outcome. Its contact now
        sticks to the slot's instance."""
        self._first.saw(message.contact_id, slot.instance)
        route = self._router.label(message, plan, slot.instance)
        phone = message.phone or ""
        try:
            sent = self._evolution.send_text(
                slot.instance, phone, message.text, delay_ms=self._typing_ms()
            )
        except RecipientNotOnWhatsApp as exc:
            self._limiter.release(slot)
            self._holds.remember_not_on_whatsapp(phone, str(exc))
            return self._outcomes.fail(message, f"recipient not on WhatsApp ({exc})", claim=slot)
        except PermanentRecipientError as exc:
            self._limiter.release(slot)
            return self._outcomes.fail(message, f"recipient rejected: {exc}", claim=slot)
        except SendOutcomeUnknown as exc:  # the slot stays spent
            return self._unknown.after_send(message, slot, exc, self._limiter.now())
        except EvolutionLicenceRequired as exc:  # before any send: not the number's fault
            self._limiter.release(slot)
            return self._outcomes.await_licence(message, slot, exc)
        except EvolutionError as exc:
            self._limiter.release(slot)
            return self._outcomes.send_failed(message, slot, exc)
        return self._outcomes.sent(message, slot, sent.provider_message_id, route)

    def _wait_for_capacity(
        self, message: MessageView, plan: RoutePlan, full: NoCapacity
    ) -> Delivered:
        patient = self._router.patience_only(plan)
        return self._outcomes.wait_for_capacity(message, plan, full, patient=patient)

    def _typing_ms(self) -> int:
        """A random "typing…" time for one send, milliseconds (TYPING_DELAY_MS; 0: off)."""
        low, high = self._typing_range
        return self._rng.randint(low, high) if high > 0 else 0
