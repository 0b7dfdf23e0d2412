"""What stops a message before routing, or holds it for later.

Stopped for good: its TTL passed (`expired`), its contact opted out, or its number is
remembered not on WhatsApp (`failed`, without asking Evolution). Held: a pause (instance,
campaign or all sending) parks it until a resume; the recipient's quiet hours park it until
their end. A held message counts as waiting, not as a failed attempt.
"""

from __future__ import annotations

import logging
import random

from config import Settings
from models.policy_store import PolicyStore
from models.views import MessageView, to_datetime
from worker import waiting
from worker.delivery_result import Delivered, Result
from worker.limiter import Limiter
from worker.not_on_whatsapp import NotOnWhatsAppMemory
from worker.optout import OptOutGate, opted_out_reason
from worker.outcomes import Outcomes
from worker.pauses import PauseBoard
from worker.policy.quiet_hours import QUIET_WAKE_SPREAD_SECONDS, quiet_until, recipient_zone

log = logging.getLogger("zapdispatch.delivery")


class Holds:
    """Checks and parks messages that must not be sent now; one per worker process."""

    def __init__(
        self,
        settings: Settings,
        limiter: Limiter,
        outcomes: Outcomes,
        rng: random.Random,
        *,
        optouts: OptOutGate | None = None,
        pauses: PauseBoard | None = None,
        policy: PolicyStore | None = None,
        memory: NotOnWhatsAppMemory | None = None,
    ) -> None:
        self._s = settings
        self._limiter = limiter
        self._outcomes = outcomes
        self._rng = rng
        self._optouts = optouts
        self._pauses = pauses
        self._policy = policy
        self._memory = memory

    def holds_new(self, campaign: str | None, phone: str) -> bool:
        """Whether a message not recorded yet would be held or stopped by a pause, quiet
        hours or a number known not on WhatsApp (at the limiter clock's now)."""
        return (
            self._held(campaign) is not None
            or self._quiet(phone) is not None
            or self._known(phone) is not None
        )

    def stop_or_hold(self, message: MessageView, now: float) -> Delivered | None:
        """Expired (TTL passed), opted out, known not on WhatsApp, or parked while a pause or
        the recipient's quiet hours hold it; None: deliver it now."""
        stopped = self._stopped(message, now)
        if stopped is not None:
            return stopped
        known = self._known(message.phone or "", now)
        if known is not None:
            return self._outcomes.fail(
                message, f"recipient not on WhatsApp (known since {known}; not asked)"
            )
        held = self._held(message.campaign)
        parked = None if held is None else self._park_held(message, held, now)
        if parked is None:
            quiet_ends = self._quiet(message.phone or "", now)
            if quiet_ends is not None:
                return self._park_quiet(message, quiet_ends, now)
        return parked

    def remember_not_on_whatsapp(self, phone: str, detail: str) -> None:
        """Evolution said `phone` is not on WhatsApp: later messages to it fail at once."""
        if self._memory is not None and phone:
            self._memory.remember(phone, self._limiter.now(), detail)

    def _stopped(self, message: MessageView, now: float) -> Delivered | None:
        """Ends here without a send: expired, or its contact opted out (by id or phone)."""
        if now >= message.expires_at.timestamp():
            return self._outcomes.expire(message, now)
        if self._optouts is not None and self._optouts.blocks(message.contact_id, message.phone):
            return self._outcomes.fail(message, opted_out_reason(message.contact_id))
        return None

    def _held(self, campaign: str | None) -> str | None:
        """Why a message of `campaign` waits for a resume now (worker/pauses.py), or None."""
        return None if self._pauses is None else self._pauses.current().holding(campaign)

    def _known(self, phone: str, now: float | None = None) -> str | None:
        """Since when (ISO) `phone` is remembered not on WhatsApp, or None."""
        if self._memory is None or not self._memory.enabled or not phone:
            return None
        found = self._memory.known_since(phone, self._limiter.now() if now is None else now)
        return None if found is None else found.isoformat()

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
        until it expires)."""
        assert self._policy is not None
        spread = self._rng.uniform(0, QUIET_WAKE_SPREAD_SECONDS)
        until = waiting.for_quiet_hours(ends, spread, message.expires_at.timestamp()).until
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
