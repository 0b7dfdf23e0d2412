"""Sends whose outcome is unknown: recorded as such, and settled before any new send.

A send with no trustworthy answer keeps its slot spent and waits
UNKNOWN_OUTCOME_GRACE_SECONDS; its next delivery asks Evolution (worker/verification.py
`look_up`) whether it went out. Found: `sent`. Not found LOOK_UPS_BEFORE_RESEND times: sent
again, on a new slot. Evolution cannot be asked: UNCERTAIN_SEND_POLICY decides.
"""

from __future__ import annotations

import logging
from datetime import datetime

from config import Settings
from models.enums import AttemptOutcome
from models.instance_store import InstanceStore
from models.message_store import MessageStore
from models.message_values import UnknownAttempt
from models.views import MessageView, to_datetime
from worker import waiting
from worker.delivery_result import Delivered, Result, Scheduler
from worker.evolution import EvolutionClient, SendOutcomeUnknown
from worker.limiter import Reservation
from worker.outcomes import Outcomes
from worker.verification import LOOK_UPS_BEFORE_RESEND, LookUp, Verdict, look_up

log = logging.getLogger("zapdispatch.delivery")


class UnknownSends:
    """Records unknown send outcomes and settles them; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        messages: MessageStore,
        instances: InstanceStore,
        evolution: EvolutionClient,
        scheduler: Scheduler,
        outcomes: Outcomes,
    ) -> None:
        self._s = settings
        self._messages = messages
        self._store = messages.unknown_sends
        self._instances = instances
        self._evolution = evolution
        self._scheduler = scheduler
        self._outcomes = outcomes

    def after_send(
        self, message: MessageView, slot: Reservation, exc: SendOutcomeUnknown, now: float
    ) -> Delivered:
        """No trustworthy answer: the slot stays spent, the message waits, and Evolution is
        asked about it after UNKNOWN_OUTCOME_GRACE_SECONDS before anything is sent again."""
        self._instances.record_send_failure(
            slot.instance, to_datetime(now), threshold=self._s.circuit_failure_threshold
        )
        grace = self._s.unknown_outcome_grace_seconds
        detail = f"{type(exc).__name__} on {slot.instance}: {exc}"
        self._store.mark(
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

    def settle(self, message: MessageView, unknown: UnknownAttempt, now: float) -> Delivered | None:
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
        at = to_datetime(now)
        if found.verdict is Verdict.FOUND and found.provider_message_id is not None:
            return self._found(message, unknown, found.provider_message_id, at)
        if found.verdict is Verdict.ABSENT:
            return self._absent(message, unknown, now)
        if found.verdict is Verdict.NOT_NOW:
            return self._ask_later(message, unknown, now, found)
        return self._cannot_verify(message, unknown, at, found.detail)

    def _found(
        self, message: MessageView, unknown: UnknownAttempt, provider_id: str, at: datetime
    ) -> Delivered:
        self._store.found(message.id, unknown, provider_id, at)
        log.info(
            "message %s was sent via %s after all (found by look-up, id %s)",
            message.id,
            unknown.instance,
            provider_id,
        )
        return Delivered(Result.SENT, instance=unknown.instance, detail="found by look-up")

    def _absent(
        self, message: MessageView, unknown: UnknownAttempt, now: float
    ) -> Delivered | None:
        """Not found: look again after a grace, or (the last look-up) send it again."""
        at, grace = to_datetime(now), self._s.unknown_outcome_grace_seconds
        if unknown.lookups + 1 < LOOK_UPS_BEFORE_RESEND:
            self._store.absent(message.id, unknown, at, to_datetime(now + grace))
            self._scheduler.schedule(message.id, grace)
            return Delivered(Result.VERIFYING, unknown.instance, grace, "not found yet")
        self._store.settle(unknown, AttemptOutcome.ABSENT, at, "Evolution has no such message")
        log.warning(
            "message %s was not sent via %s: sending it again", message.id, unknown.instance
        )
        return None

    def _ask_later(
        self, message: MessageView, unknown: UnknownAttempt, now: float, found: LookUp
    ) -> Delivered:
        """Evolution could not be reached: ask again after a retry backoff."""
        wait = waiting.before_asking_again(message.requeues, self._outcomes.policy)
        self._messages.note_requeue(
            message.id, to_datetime(now), not_before=to_datetime(now + wait)
        )
        self._scheduler.schedule(message.id, wait)
        return Delivered(Result.VERIFYING, unknown.instance, wait, found.detail)

    def _cannot_verify(
        self, message: MessageView, unknown: UnknownAttempt, at: datetime, why: str
    ) -> Delivered | None:
        """Evolution cannot be asked: UNCERTAIN_SEND_POLICY decides between sending again
        (`retry`: None) and recording `failed` (`fail`)."""
        if self._s.uncertain_send_policy == "fail":
            return self._outcomes.fail(
                message, f"outcome unknown: Evolution cannot be asked ({why})"
            )
        self._store.settle(unknown, AttemptOutcome.UNVERIFIED, at, why)
        log.warning(
            "message %s: Evolution cannot be asked whether it was sent via %s (%s); "
            "sending it again (UNCERTAIN_SEND_POLICY=retry)",
            message.id,
            unknown.instance,
            why,
        )
        return None
