"""Delivery of one recorded message: route → reserve → claim → send → record.

A plain class with no Celery in it. It never holds a database session across the HTTP
call: each step is its own short transaction. Waiting (no capacity, nothing online,
transient failures) is handed to a `Scheduler`, which the Celery layer implements with
countdowns; long waits are parked in PostgreSQL (`waiting` + `not_before`) instead.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from sqlalchemy.exc import DBAPIError

from config import Settings
from models.enums import AttemptOutcome, MessageState
from models.instance_store import InstanceStore
from models.message_store import Accepted, ClaimOutcome, MessageStore, NewMessage, RoutingInput
from models.message_values import UnknownAttempt, new_message_view
from models.policy_store import PolicyStore
from models.views import InstanceView, MessageView, to_datetime
from worker.breaker import BreakerPolicy
from worker.evolution import (
    EvolutionClient,
    EvolutionError,
    InstanceRateLimited,
    PermanentRecipientError,
    RecipientNotOnWhatsApp,
    SendOutcomeUnknown,
)
from worker.limiter import Limiter, NoCapacity, Reservation
from worker.limiter.timezones import DAY_SECONDS, HOUR_SECONDS
from worker.not_on_whatsapp import NotOnWhatsAppMemory
from worker.optout import OptOutGate, opted_out_reason
from worker.pauses import PauseBoard
from worker.phones import mask_id, mask_phone
from worker.policy.pauses import PauseSet
from worker.policy.quiet_hours import QUIET_WAKE_SPREAD_SECONDS, quiet_until, recipient_zone
from worker.policy.warmup import local_day, warmed
from worker.routing import (
    RoutePlan,
    RouteRequest,
    RoutingTable,
    plan_route,
    routing_table,
)
from worker.sticky_cache import StickyCache
from worker.verification import LOOK_UPS_BEFORE_RESEND, Verdict, look_up

log = logging.getLogger("zapdispatch.delivery")

#: Pauses between attempts to record `sent` while the database is away (seconds).
RECORD_RETRY_FIRST_SECONDS = 0.25
RECORD_RETRY_MAX_SECONDS = 5.0

#: How many times a message is re-routed when its contact's sticky number moved meanwhile.
PREFERENCE_RACE_LIMIT = 3


class Scheduler(Protocol):
    def schedule(self, message_id: uuid.UUID, countdown_seconds: float) -> None:
        """Run delivery of `message_id` again in `countdown_seconds`."""


class Result(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    REQUEUED = "requeued"  # waiting for capacity or for an instance to come online
    PARKED = "parked"  # waiting in PostgreSQL until `not_before`
    RETRYING = "retrying"  # a transient send failure; retried with backoff
    VERIFYING = "verifying"  # the last send's outcome is unknown: Evolution is asked first
    SKIPPED = "skipped"  # terminal already, or another worker holds it


@dataclass(frozen=True, slots=True)
class Delivered:
    result: Result
    instance: str | None = None
    countdown_seconds: float | None = None
    detail: str | None = None


def skipped(accepted: Accepted) -> Delivered:
    """Nothing to deliver: the message was recorded `failed`, or is another run's."""
    return Delivered(Result.SKIPPED, detail=f"message {accepted.id} is {accepted.state}")


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Capped exponential backoff: base × 2^(attempt−1), at most `cap` seconds."""
    return float(min(cap, base * 2.0 ** max(0, attempt - 1)))


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
        self._s = settings
        self._messages = messages
        self._instances = instances
        self._limiter = limiter
        self._evolution = evolution
        self._scheduler = scheduler
        self._rng = rng or random.Random()
        self._breaker = BreakerPolicy.from_settings(settings)
        self._table: tuple[Sequence[InstanceView], RoutingTable] | None = None
        self._preferences = sticky if sticky is not None else StickyCache()
        self._optouts = optouts
        self._pauses = pauses
        self._policy = policy
        self._memory = memory
        self._unpaused: (
            tuple[Sequence[InstanceView], PauseSet | None, Sequence[InstanceView], int] | None
        )
        self._unpaused = None

    def deliver_new(self, new: NewMessage) -> Delivered:
        """Record and deliver a message the producer just handed over.

        The message is routed on the contact's sticky instance as this worker last saw it
        (worker/sticky_cache.py), then recorded already claimed for the reserved instance
        (`accept_claiming`: one statement instead of two), which checks that sticky
        instance in the database. When the check fails, no slot is free, or the cache
        advises against guessing about an unknown contact, the message is recorded `queued`
        and `deliver` takes over. Raises IdempotencyConflict when its key names a different
        message."""
        seen = self._preferences.get(new.contact_id)
        if self._held(new.campaign) is not None or self._quiet(new.phone) or self._known(new.phone):
            return self._deliver_recorded(self._accept(new, seen))  # recorded, then parked
        if seen is None and not self._preferences.guess_unknown_are_new():
            return self._deliver_recorded(self._accept(new, seen))
        message, now = new_message_view(new), self._limiter.now()
        plan = plan_route(self._route_request(message, seen, now), self._breaker)
        if plan.waiting_for_preferred or plan.empty:
            return self._deliver_recorded(self._accept(new, seen))
        reserved = self._reserve(plan, new.phone)
        if isinstance(reserved, NoCapacity):
            return self._wait_after_accept(new, plan, reserved)
        return self._accept_claiming(new, plan, reserved)

    def _accept_claiming(self, new: NewMessage, plan: RoutePlan, slot: Reservation) -> Delivered:
        try:
            accepted = self._messages.accept_claiming(
                new, slot.instance, seen=plan.preferred, claimed_at=to_datetime(slot.now)
            )
        except BaseException:
            self._limiter.release(slot)
            raise
        routing = accepted.routing
        if plan.preferred is None:
            self._learn_unknown(accepted)
        if routing is not None and routing.message.state is MessageState.SENDING:
            return self._send_claimed(routing.message, plan, slot)
        self._limiter.release(slot)  # the sticky instance moved meanwhile, or not ours
        return self._deliver_recorded(accepted)

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

    def _wait_after_accept(self, new: NewMessage, plan: RoutePlan, full: NoCapacity) -> Delivered:
        """No slot for a new message: record it, then wait as `deliver` would have."""
        accepted = self._accept(new, plan.preferred)
        routing = accepted.routing
        if routing is None or routing.preferred_instance != plan.preferred:
            return self._deliver_recorded(accepted)  # routed on a stale preference: again
        return self._wait_for_capacity(routing.message, plan, full)

    def _deliver_recorded(self, accepted: Accepted) -> Delivered:
        if not accepted.created:
            log.info("idempotency key reused: message %s already accepted", accepted.id)
        if accepted.state is not MessageState.QUEUED:
            return skipped(accepted)
        return self.deliver(accepted.id, accepted.routing)

    def deliver(self, message_id: uuid.UUID, known: RoutingInput | None = None) -> Delivered:
        """Try once to send; every path ends in a recorded state or a scheduled retry.

        `known` is the message's routing input when the caller has just recorded it
        (`MessageStore.accept`); otherwise it is read from the database."""
        for _ in range(PREFERENCE_RACE_LIMIT):
            outcome = self._attempt(known or self._messages.routing_input(message_id))
            if outcome is not None:
                return outcome
            known = None  # the contact's sticky number moved meanwhile: read it again
        return self._requeue_soon(self._messages.get(message_id), "sticky preference race")

    # -- one attempt --------------------------------------------------------------------
    def _attempt(self, found: RoutingInput) -> Delivered | None:
        message, now = found.message, self._limiter.now()
        if message.contact_id is not None:
            self._preferences.put(message.contact_id, found.preferred_instance)
        if message.state.terminal or message.state.value == "sending":
            return Delivered(Result.SKIPPED, detail=f"message is {message.state}")
        if found.unknown is not None and (verified := self._verify(message, found.unknown, now)):
            return verified
        not_now = self._expired_or_held(message, now)
        if not_now is not None:
            return not_now
        return self._route_and_send(message, found.preferred_instance, now)

    def _route_and_send(
        self, message: MessageView, preferred: str | None, now: float
    ) -> Delivered | None:
        plan = plan_route(self._route_request(message, preferred, now), self._breaker)
        if plan.waiting_for_preferred:
            patience_ends = message.created_at.timestamp() + self._s.sticky_patience_seconds
            wait = min(self._s.offline_backoff_seconds, max(1.0, patience_ends - now))
            return self._requeue(message, wait, "waiting for the preferred instance")
        if plan.empty:
            return self._nothing_online(message)
        reserved = self._reserve(plan, message.phone or "")
        if isinstance(reserved, NoCapacity):
            return self._wait_for_capacity(message, plan, reserved)
        return self._claim_and_send(message, plan, reserved)

    def _stopped(self, message: MessageView, now: float) -> Delivered | None:
        """Ends here without a send: expired, or its contact opted out (by id or phone)."""
        if now >= message.expires_at.timestamp():
            return self._expire(message, now)
        if self._optouts is not None and self._optouts.blocks(message.contact_id, message.phone):
            return self._fail(message, opted_out_reason(message.contact_id))
        return None

    def _reserve(self, plan: RoutePlan, phone: str) -> Reservation | NoCapacity:
        """A slot on the plan's first choice (instances without recent send failures); on
        the others only when the first choice is over its caps. Waiting out a pacing or
        recipient gap is better than handing a new contact to a number that is failing."""
        if plan.first_choice is not None:
            first = self._limiter.reserve(plan.first_choice, phone=phone, strict=plan.strict)
            if isinstance(first, Reservation) or first.reason != "caps":
                return first
        return self._limiter.reserve(plan.candidates, phone=phone, strict=plan.strict)

    def _route_request(
        self, message: MessageView, preferred: str | None, now: float
    ) -> RouteRequest:
        failed_here = message.instance if message.attempts >= 2 and message.last_error else None
        instances = self._routable(self._instances.snapshot(), now)
        return RouteRequest(
            preferred=preferred,
            instances=instances,
            now=now,
            message_age_seconds=now - message.created_at.timestamp(),
            sticky_patience_seconds=self._s.sticky_patience_seconds,
            demote=failed_here,
            table=self._routing_table(instances),
        )

    # -- pauses ---------------------------------------------------------------------------
    def _held(self, campaign: str | None) -> str | None:
        """Why a message of `campaign` waits for a resume now (worker/pauses.py), or None."""
        return None if self._pauses is None else self._pauses.current().holding(campaign)

    def _expired_or_held(self, message: MessageView, now: float) -> Delivered | None:
        """Expired (TTL passed), opted out, known not on WhatsApp, or parked while a pause or
        the recipient's quiet hours hold it; None: deliver it now."""
        stopped = self._stopped(message, now)
        if stopped is not None:
            return stopped
        known = self._known(message.phone or "", now)
        if known is not None:
            return self._fail(
                message, f"recipient not on WhatsApp (known since {known}; not asked)"
            )
        held = self._held(message.campaign)
        parked = None if held is None else self._park_held(message, held, now)
        if parked is None:
            quiet_ends = self._quiet(message.phone or "", now)
            if quiet_ends is not None:
                return self._park_quiet(message, quiet_ends, now)
        return parked

    # -- numbers not on WhatsApp (worker/not_on_whatsapp.py) -----------------------------
    def _known(self, phone: str, now: float | None = None) -> str | None:
        """Since when (ISO) `phone` is remembered not on WhatsApp, or None."""
        if self._memory is None or not self._memory.enabled or not phone:
            return None
        found = self._memory.known_since(phone, self._limiter.now() if now is None else now)
        return None if found is None else found.isoformat()

    def _remember_not_on_whatsapp(self, phone: str, detail: str) -> None:
        if self._memory is not None and phone:
            self._memory.remember(phone, self._limiter.now(), detail)

    def _typing_ms(self) -> int:
        """A random "typing…" time for one send, milliseconds (TYPING_DELAY_MS; 0: off)."""
        low, high = self._s.typing_delay_range
        return self._rng.randint(low, high) if high > 0 else 0

    # -- the recipient's quiet hours ------------------------------------------------------
    def _quiet(self, phone: str, now: float | None = None) -> float | None:
        """When the recipient's quiet hours (QUIET_HOURS, in its local time) end, if `now`
        (default: the limiter clock) is inside them; None otherwise or when they are off."""
        window = self._s.quiet_window
        if window is None or self._policy is None or not phone:
            return None
        at = self._limiter.now() if now is None else now
        return quiet_until(at, recipient_zone(phone, self._s.zone), window)

    def _park_quiet(self, message: MessageView, ends: float, now: float) -> Delivered:
        """Park until the recipient's morning, spread over QUIET_WAKE_SPREAD_SECONDS (at most
        until it expires): it counts as waiting, not as a failed attempt."""
        assert self._policy is not None
        until = min(
            ends + self._rng.uniform(0, QUIET_WAKE_SPREAD_SECONDS), message.expires_at.timestamp()
        )
        self._policy.park_quiet(message.id, to_datetime(until), to_datetime(now))
        log.info(
            "message %s parked until %s: quiet hours of its recipient",
            message.id,
            to_datetime(until).isoformat(),
        )
        return Delivered(Result.PARKED, countdown_seconds=until - now, detail="quiet hours")

    def _park_held(self, message: MessageView, why: str, now: float) -> Delivered | None:
        """Park a paused message until its expiry; a resume makes it due (no attempt, no
        requeue: nothing knocks while the pause lasts). None when the pause was lifted
        meanwhile (this worker's view was up to a second old): deliver it now."""
        assert self._pauses is not None
        until = message.expires_at
        if not self._pauses.park(message.id, message.campaign, until, now):
            return None
        log.info("message %s parked: %s", message.id, why)
        return Delivered(Result.PARKED, countdown_seconds=until.timestamp() - now, detail=why)

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
        table = routing_table(instances, self._breaker)
        self._table = (instances, table)
        return table

    def _claim_and_send(
        self, message: MessageView, plan: RoutePlan, slot: Reservation
    ) -> Delivered | None:
        claim = self._messages.claim(
            message.id,
            slot.instance,
            contact_id=message.contact_id,
            seen_preference=plan.preferred,
            now=to_datetime(slot.now),
        )
        if claim is not ClaimOutcome.CLAIMED:
            self._limiter.release(slot)
            if claim is ClaimOutcome.INSTANCE_UNUSABLE:
                self._instances.forget_snapshot()  # banned or deactivated since: route again
                return None
            if claim is ClaimOutcome.PREFERENCE_CHANGED:
                return None
            return Delivered(Result.SKIPPED, detail="claimed by another worker")
        return self._send_claimed(message, plan, slot)

    def _send_claimed(self, message: MessageView, plan: RoutePlan, slot: Reservation) -> Delivered:
        """Send a message this worker has just claimed; its contact now sticks to the slot's
        instance, which the sticky cache learns."""
        if message.contact_id is not None:
            self._preferences.put(message.contact_id, slot.instance)
        return self._send(message, slot, self._route_label(message, plan, slot.instance))

    def _send(self, message: MessageView, slot: Reservation, route: str) -> Delivered:
        """Send through the reserved instance; `route` says how it was chosen (for the log)."""
        try:
            sent = self._evolution.send_text(
                slot.instance, message.phone or "", message.text, delay_ms=self._typing_ms()
            )
        except RecipientNotOnWhatsApp as exc:
            self._limiter.release(slot)
            self._remember_not_on_whatsapp(message.phone or "", str(exc))
            return self._fail(message, f"recipient not on WhatsApp ({exc})", claim=slot)
        except PermanentRecipientError as exc:
            self._limiter.release(slot)
            return self._fail(message, f"recipient rejected: {exc}", claim=slot)
        except SendOutcomeUnknown as exc:
            return self._outcome_unknown(message, slot, exc)  # the slot stays spent
        except EvolutionError as exc:
            self._limiter.release(slot)
            return self._transient_failure(message, slot, exc)
        self._record_sent(message.id, sent.provider_message_id, slot)
        self._instances.forget_failures_seen(slot.instance)
        log.info(
            "sent message %s via %s to contact %s (%s)",
            message.id,
            slot.instance,
            mask_id(message.contact_id),
            route,
        )
        return Delivered(Result.SENT, instance=slot.instance)

    def _record_sent(
        self, message_id: uuid.UUID, provider_id: str | None, slot: Reservation
    ) -> None:
        """Commit `sent` for a message Evolution accepted. The send cannot be undone, so a
        database outage here is retried in place, for at most half of
        SENDING_STUCK_AFTER_SECONDS: giving up sooner leaves the claim for the sweep, which
        re-sends it (a duplicate), or records it `expired` when no slot is left."""
        deadline = time.monotonic() + self._s.sending_stuck_after_seconds / 2
        pause = RECORD_RETRY_FIRST_SECONDS
        while True:
            try:
                self._messages.mark_sent(
                    message_id,
                    provider_id,
                    to_datetime(slot.now),
                    instance=slot.instance,
                    claimed_at=to_datetime(slot.now),
                )
                return
            except DBAPIError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                pause = min(pause, left)
                log.warning(
                    "message %s was sent but not recorded yet (%s); retrying in %.1f s",
                    message_id,
                    type(exc).__name__,
                    pause,
                )
                time.sleep(pause)
                pause = min(pause * 2, RECORD_RETRY_MAX_SECONDS)

    # -- sends whose outcome is unknown ---------------------------------------------------
    def _outcome_unknown(
        self, message: MessageView, slot: Reservation, exc: SendOutcomeUnknown
    ) -> Delivered:
        """No trustworthy answer: the slot stays spent, the message waits, and Evolution is
        asked about it after UNKNOWN_OUTCOME_GRACE_SECONDS before anything is sent again."""
        now = self._limiter.now()
        self._instances.record_send_failure(
            slot.instance, to_datetime(now), threshold=self._s.circuit_failure_threshold
        )
        grace = self._s.unknown_outcome_grace_seconds
        detail = f"{type(exc).__name__} on {slot.instance}: {exc}"
        self._messages.mark_unknown(
            message.id,
            detail,
            to_datetime(now),
            look_up_at=to_datetime(now + grace),
            claimed_at=to_datetime(slot.now),
        )
        self._scheduler.schedule(message.id, grace)
        log.warning(
            "send of message %s via %s has an unknown outcome (%s); asking Evolution in %.0f s",
            message.id,
            slot.instance,
            detail,
            grace,
        )
        return Delivered(Result.VERIFYING, slot.instance, grace, detail)

    def _verify(
        self, message: MessageView, unknown: UnknownAttempt, now: float
    ) -> Delivered | None:
        """Settle an unknown attempt before anything is sent again. Returns None when the
        message may be routed and sent again (on a new slot)."""
        due = message.not_before.timestamp() if message.not_before is not None else now
        if now < due:
            self._scheduler.schedule(message.id, due - now)
            return Delivered(Result.VERIFYING, unknown.instance, due - now, "look-up not due")
        found = look_up(
            self._evolution,
            unknown.instance,
            message.phone or "",
            message.text,
            unknown.started_at.timestamp(),
        )
        at, grace = to_datetime(now), self._s.unknown_outcome_grace_seconds
        if found.verdict is Verdict.FOUND and found.provider_message_id is not None:
            self._messages.settle_found(message.id, unknown, found.provider_message_id, at)
            log.info(
                "message %s was sent via %s after all (found by look-up, id %s)",
                message.id,
                unknown.instance,
                found.provider_message_id,
            )
            return Delivered(Result.SENT, instance=unknown.instance, detail="found by look-up")
        if found.verdict is Verdict.ABSENT and unknown.lookups + 1 < LOOK_UPS_BEFORE_RESEND:
            self._messages.note_absent(message.id, unknown, at, to_datetime(now + grace))
            self._scheduler.schedule(message.id, grace)
            return Delivered(Result.VERIFYING, unknown.instance, grace, "not found yet")
        if found.verdict is Verdict.ABSENT:
            self._messages.settle_unknown(
                unknown, AttemptOutcome.ABSENT, at, "Evolution has no such message"
            )
            log.warning(
                "message %s was not sent via %s: sending it again", message.id, unknown.instance
            )
            return None
        if found.verdict is Verdict.NOT_NOW:
            wait = backoff_seconds(
                message.requeues + 1,
                self._s.retry_backoff_seconds,
                self._s.retry_backoff_max_seconds,
            )
            self._messages.note_requeue(message.id, at, not_before=to_datetime(now + wait))
            self._scheduler.schedule(message.id, wait)
            return Delivered(Result.VERIFYING, unknown.instance, wait, found.detail)
        return self._cannot_verify(message, unknown, at, found.detail)

    def _cannot_verify(
        self, message: MessageView, unknown: UnknownAttempt, at: datetime, why: str
    ) -> Delivered | None:
        """Evolution cannot be asked: UNCERTAIN_SEND_POLICY decides between sending again
        (`retry`: None) and recording `failed` (`fail`)."""
        if self._s.uncertain_send_policy == "fail":
            return self._fail(message, f"outcome unknown: Evolution cannot be asked ({why})")
        self._messages.settle_unknown(unknown, AttemptOutcome.UNVERIFIED, at, why)
        log.warning(
            "message %s: Evolution cannot be asked whether it was sent via %s (%s); "
            "sending it again (UNCERTAIN_SEND_POLICY=retry)",
            message.id,
            unknown.instance,
            why,
        )
        return None

    # -- outcomes -----------------------------------------------------------------------
    def _transient_failure(
        self, message: MessageView, slot: Reservation, exc: EvolutionError
    ) -> Delivered:
        at = to_datetime(slot.now)
        failures = self._instances.record_send_failure(
            slot.instance, at, threshold=self._s.circuit_failure_threshold
        )
        attempts = message.attempts + 1
        error = f"{type(exc).__name__} on {slot.instance}: {exc}"
        log.warning(
            "send of message %s via %s failed (attempt %d, instance failures %d): %s",
            message.id,
            slot.instance,
            attempts,
            failures,
            error,
        )
        if attempts >= self._s.max_send_attempts:
            return self._fail(
                message, f"gave up after {attempts} attempts; last: {error}", claim=slot
            )
        self._messages.return_to_queue(message.id, error, at, claimed_at=at)
        delay = backoff_seconds(
            attempts, self._s.retry_backoff_seconds, self._s.retry_backoff_max_seconds
        )
        if isinstance(exc, InstanceRateLimited) and exc.retry_after_seconds:
            # The number asked for a pause: do not knock again before it ends.
            delay = min(max(delay, exc.retry_after_seconds), self._s.retry_backoff_max_seconds)
        if delay > self._s.max_countdown_seconds:
            # Longer than a countdown may be (the sweep would take the task for lost and
            # enqueue a second one): parked in PostgreSQL until then.
            self._messages.note_requeue(message.id, at, not_before=to_datetime(slot.now + delay))
            return Delivered(Result.PARKED, slot.instance, delay, error)
        self._scheduler.schedule(message.id, delay)
        return Delivered(Result.RETRYING, slot.instance, delay, error)

    def _fail(
        self, message: MessageView, reason: str, *, claim: Reservation | None = None
    ) -> Delivered:
        """Record `failed`; `claim` is the slot of the claim this worker holds, if any (the
        message must still be under that claim)."""
        claimed_at = to_datetime(claim.now) if claim is not None else None
        self._messages.mark_failed(
            message.id, reason, to_datetime(self._limiter.now()), claimed_at=claimed_at
        )
        log.warning(
            "message %s to %s failed permanently: %s",
            message.id,
            mask_phone(message.phone or ""),
            reason,
        )
        return Delivered(Result.FAILED, detail=reason)

    def _expire(self, message: MessageView, now: float) -> Delivered:
        self._messages.mark_expired(message.id, to_datetime(now))
        log.warning(
            "message %s expired after %d requeues (TTL passed)", message.id, message.requeues
        )
        return Delivered(Result.EXPIRED)

    def _nothing_online(self, message: MessageView) -> Delivered:
        delay = backoff_seconds(
            message.requeues + 1,
            self._s.offline_backoff_seconds,
            self._s.offline_backoff_max_seconds,
        )
        log.error("no instance available for message %s; retrying in %.0f s", message.id, delay)
        return self._requeue(message, delay, "no instance online")

    def _wait_for_capacity(
        self, message: MessageView, plan: RoutePlan, full: NoCapacity
    ) -> Delivered:
        wait = max(0.0, full.retry_at - full.now) + self._jitter()
        if plan.waiting_for_preferred or self._patience_only(plan):
            patience_ends = message.created_at.timestamp() + self._s.sticky_patience_seconds
            wait = min(wait, max(1.0, patience_ends - full.now))
        if wait <= self._s.max_countdown_seconds:
            return self._requeue(message, wait, f"no capacity ({full.reason})")
        until = min(self._parking_time(plan, full), message.expires_at.timestamp())
        return self._park(message, until, full)

    def _patience_only(self, plan: RoutePlan) -> bool:
        """True when the plan holds only the preferred instance because of sticky patience."""
        return (
            plan.strict == 1 and len(plan.candidates) == 1 and self._s.sticky_patience_seconds > 0
        )

    def _parking_time(self, plan: RoutePlan, full: NoCapacity) -> float:
        """When a parked message should wake (unix seconds): the window where it should fit.

        Messages book wake-ups at the window start that `full.retry_at` names; once that
        window's capacity (the candidates' summed caps) is booked, later bookings go to the
        following windows. So each window wakes about as many messages as it can send,
        instead of all of them waking at the next boundary and most parking again.
        """
        if full.reason != "caps":
            return full.retry_at + self._jitter()
        window = DAY_SECONDS if full.retry_at - full.now > HOUR_SECONDS else HOUR_SECONDS
        capacity = sum(
            c.daily_cap if window == DAY_SECONDS else c.hourly_cap for c in plan.candidates
        )
        ttl = int(full.retry_at - full.now) + 2 * DAY_SECONDS
        position = self._limiter.book_wake(full.retry_at, ttl)
        return full.retry_at + (position - 1) // max(1, capacity) * window + self._jitter()

    def _park(self, message: MessageView, until: float, full: NoCapacity) -> Delivered:
        self._messages.note_requeue(
            message.id, to_datetime(full.now), not_before=to_datetime(until), reason=full.reason
        )
        log.info(
            "message %s parked until %s (%s)",
            message.id,
            to_datetime(until).isoformat(),
            full.reason,
        )
        return Delivered(Result.PARKED, countdown_seconds=until - full.now, detail=full.reason)

    def _requeue(self, message: MessageView, countdown: float, why: str) -> Delivered:
        countdown = min(countdown, float(self._s.max_countdown_seconds))
        self._messages.note_requeue(message.id, to_datetime(self._limiter.now()), reason=why)
        self._scheduler.schedule(message.id, countdown)
        return Delivered(Result.REQUEUED, countdown_seconds=countdown, detail=why)

    def _requeue_soon(self, message: MessageView, why: str) -> Delivered:
        return self._requeue(message, 1.0 + self._jitter(), why)

    def _jitter(self) -> float:
        return self._rng.uniform(0, self._s.requeue_jitter_seconds)

    def _route_label(self, message: MessageView, plan: RoutePlan, instance: str) -> str:
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
