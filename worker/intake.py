"""Acceptance of producer input: validate (`worker/message_input.py`), record
(idempotently), opted-out contacts recorded `failed`.

Used by the `zapdispatch.send_message` task (bad input → a `failed` record, no retry) and
by `tasks.enqueue_message` (bad input → ValueError before anything is queued).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from config import Settings
from models.enums import MessageState
from models.message_store import Accepted, IdempotencyConflict, MessageStore, NewMessage
from models.views import to_datetime
from worker.limiter import Limiter
from worker.message_input import rejection, validate
from worker.optout import OptOutGate, opted_out_reason

log = logging.getLogger("zapdispatch.intake")


class Intake:
    """Records what producers send: a valid message (idempotently), or the rejection."""

    def __init__(
        self,
        settings: Settings,
        messages: MessageStore,
        limiter: Limiter,
        optouts: OptOutGate | None = None,
    ) -> None:
        self._s = settings
        self._messages = messages
        self._limiter = limiter
        self._optouts = optouts

    def validated(self, fields: Mapping[str, object]) -> NewMessage:
        """The message `fields` describe, not yet recorded; raises InvalidMessage."""
        return validate(
            fields, now=self._limiter.now(), default_ttl_seconds=self._s.message_ttl_seconds
        )

    def accept(self, fields: Mapping[str, object]) -> Accepted:
        """Record a valid message (or return the one its idempotency key names).

        Raises InvalidMessage or IdempotencyConflict (both ValueError) for bad input.
        """
        new = self.validated(fields)
        if self.opted_out(new):
            return self.record_opted_out(new)
        accepted = self._messages.accept(new)
        if not accepted.created:
            log.info("idempotency key reused: message %s already accepted", accepted.id)
        return accepted

    def opted_out(self, new: NewMessage) -> bool:
        """Whether `new` goes to a contact that opted out (by contact id or by phone)."""
        return self._optouts is not None and self._optouts.blocks(new.contact_id, new.phone)

    def record_opted_out(self, new: NewMessage) -> Accepted:
        """Record `new` `failed` (`opted out…`): nothing is sent. Idempotent on its key."""
        accepted = self._messages.accept(new)
        if accepted.created and accepted.state is MessageState.QUEUED:
            reason = opted_out_reason(new.contact_id)
            self._messages.mark_failed(accepted.id, reason, to_datetime(self._limiter.now()))
            log.info("message %s not sent: contact opted out", accepted.id)
            return replace(accepted, state=MessageState.FAILED, routing=None)
        return accepted

    def record_conflict(
        self, fields: Mapping[str, object], conflict: IdempotencyConflict
    ) -> Accepted:
        """The key belongs to another message: record this one `failed`, without the key."""
        return self.record_rejection({**fields, "idempotency_key": None}, str(conflict))

    def record_rejection(self, fields: Mapping[str, object], reason: str) -> Accepted:
        """Record input that cannot become a message as `failed` with `reason`."""
        recorded = self._messages.reject(rejection(fields, reason, now=self._limiter.now()))
        log.warning("rejected message %s: %s", recorded.id, reason)
        return recorded
