"""Recording how one delivery run ends: sent, failed, expired, or waiting.

How long a message waits, and whether as a countdown or parked in PostgreSQL, is decided
by worker/waiting.py from plain values; this module applies the decision (the message
store, the scheduler, the wake-up booking) and logs it.
"""

from __future__ import annotations

import logging
import random
import time
import uuid

from sqlalchemy.exc import DBAPIError

from config import Settings
from models.instance_store import InstanceStore
from models.message_store import MessageStore
from models.views import MessageView, to_datetime
from worker import waiting
from worker.delivery_result import Delivered, Result, Scheduler
from worker.evolution import EvolutionError, EvolutionLicenceRequired, InstanceRateLimited
from worker.limiter import Limiter, NoCapacity, Reservation
from worker.phones import mask_id, mask_phone
from worker.routing import RoutePlan

log = logging.getLogger("zapdispatch.delivery")

#: Pauses between attempts to record `sent` while the database is away (seconds).
RECORD_RETRY_FIRST_SECONDS = 0.25
RECORD_RETRY_MAX_SECONDS = 5.0


class Outcomes:
    """Records ends and waits of deliveries; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        messages: MessageStore,
        instances: InstanceStore,
        limiter: Limiter,
        scheduler: Scheduler,
        rng: random.Random,
    ) -> None:
        self._s = settings
        self._messages = messages
        self._instances = instances
        self._limiter = limiter
        self._scheduler = scheduler
        self._rng = rng
        self.policy = waiting.WaitPolicy.from_settings(settings)

    # -- ends -----------------------------------------------------------------------------
    def sent(
        self, message: MessageView, slot: Reservation, provider_id: str | None, route: str
    ) -> Delivered:
        """Evolution accepted the send through `slot`; `route` says how it was chosen."""
        self._record_sent(message.id, provider_id, slot)
        self._instances.forget_failures_seen(slot.instance)
        log.info(
            "sent message %s via %s to contact %s (%s)",
            message.id,
            slot.instance,
            mask_id(message.contact_id),
            route,
        )
        return Delivered(Result.SENT, instance=slot.instance)

    def fail(
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

    def expire(self, message: MessageView, now: float) -> Delivered:
        self._messages.mark_expired(message.id, to_datetime(now))
        log.warning(
            "message %s expired after %d requeues (TTL passed)", message.id, message.requeues
        )
        return Delivered(Result.EXPIRED)

    def send_failed(
        self, message: MessageView, slot: Reservation, exc: EvolutionError
    ) -> Delivered:
        """A send that provably did not happen (its slot already given back): counted
        against the instance, then retried, parked, or failed once attempts are used up."""
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
        # A rate-limited number asked for a pause: do not knock again before it ends.
        pause = exc.retry_after_seconds if isinstance(exc, InstanceRateLimited) else None
        decision = waiting.after_send_failure(attempts, slot.now, pause, self.policy)
        if decision is None:
            return self.fail(
                message, f"gave up after {attempts} attempts; last: {error}", claim=slot
            )
        self._messages.return_to_queue(message.id, error, at, claimed_at=at)
        if isinstance(decision, waiting.Park):
            # Longer than a countdown may be (the sweep would take the task for lost and
            # enqueue a second one): parked in PostgreSQL until then.
            self._messages.note_requeue(message.id, at, not_before=to_datetime(decision.until))
            return Delivered(Result.PARKED, slot.instance, decision.until - slot.now, error)
        self._scheduler.schedule(message.id, decision.countdown_seconds)
        return Delivered(Result.RETRYING, slot.instance, decision.countdown_seconds, error)

    # -- waits ----------------------------------------------------------------------------
    def await_licence(
        self, message: MessageView, slot: Reservation, exc: EvolutionLicenceRequired
    ) -> Delivered:
        """Evolution is not activated: no number can send and none is at fault (no breaker
        count), nor is the message (the attempt is given back; it never fails for this). It
        waits parked until the gate is lifted or it expires."""
        at, why = to_datetime(slot.now), f"Evolution requires a licence ({exc})"
        park = waiting.for_licence(message.requeues, slot.now, self.policy)
        self._messages.return_to_queue(message.id, why, at, claimed_at=at, refund_attempt=True)
        self._messages.note_requeue(message.id, at, not_before=to_datetime(park.until), reason=why)
        return Delivered(Result.PARKED, slot.instance, park.until - slot.now, why)

    def wait_for_preferred(self, message: MessageView, now: float) -> Delivered:
        wait = waiting.for_preferred(now, message.created_at.timestamp(), self.policy)
        return self.requeue(message, wait, "waiting for the preferred instance")

    def nothing_online(self, message: MessageView) -> Delivered:
        wait = waiting.for_instances(message.requeues, self.policy)
        log.error(
            "no instance available for message %s; retrying in %.0f s",
            message.id,
            wait.countdown_seconds,
        )
        return self.requeue(message, wait, "no instance online")

    def wait_for_capacity(
        self, message: MessageView, plan: RoutePlan, full: NoCapacity, *, patient: bool
    ) -> Delivered:
        """No slot on `plan` (`patient`: only the sticky instance is tried, for patience)."""
        decision = waiting.for_capacity(
            now=full.now,
            retry_at=full.retry_at,
            caps_full=full.reason == "caps",
            created_at=message.created_at.timestamp(),
            expires_at=message.expires_at.timestamp(),
            patient=patient or plan.waiting_for_preferred,
            capacity_hour=sum(c.hourly_cap for c in plan.candidates),
            capacity_day=sum(c.daily_cap for c in plan.candidates),
            jitter=self.jitter(),
            wake_jitter=self.jitter(),
            policy=self.policy,
        )
        if isinstance(decision, waiting.Requeue):
            return self.requeue(message, decision, f"no capacity ({full.reason})")
        if isinstance(decision, waiting.ParkInWindow):
            position = self._limiter.book_wake(decision.window_start, decision.booking_ttl_seconds)
            decision = waiting.wake_in_window(decision, position)
        return self._park(message, decision.until, full)

    def requeue(self, message: MessageView, wait: waiting.Requeue, why: str) -> Delivered:
        countdown = wait.countdown_seconds
        self._messages.note_requeue(message.id, to_datetime(self._limiter.now()), reason=why)
        self._scheduler.schedule(message.id, countdown)
        return Delivered(Result.REQUEUED, countdown_seconds=countdown, detail=why)

    def requeue_soon(self, message: MessageView, why: str) -> Delivered:
        return self.requeue(message, waiting.requeue(1.0 + self.jitter(), self.policy), why)

    def jitter(self) -> float:
        """A random spread for a wait, up to REQUEUE_JITTER_SECONDS."""
        return self._rng.uniform(0, self._s.requeue_jitter_seconds)

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
