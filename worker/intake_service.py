"""Acceptance of producer input: validate, record (idempotently), then deliver.

Used by the `zapdispatch.send_message` task (bad input → a `failed` record, no retry) and
by `tasks.enqueue_message` (bad input → ValueError before anything is queued).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from config import Settings
from models.message_store import Accepted, IdempotencyConflict, MessageStore, NewMessage
from worker.intake import InvalidMessage, rejection, validate
from worker.limiter import Limiter

log = logging.getLogger("zapdispatch.intake")


class Intake:
    def __init__(self, settings: Settings, messages: MessageStore, limiter: Limiter) -> None:
        self._s = settings
        self._messages = messages
        self._limiter = limiter

    def validated(self, fields: Mapping[str, object]) -> NewMessage:
        """The message `fields` describe, not yet recorded; raises InvalidMessage."""
        return validate(
            fields, now=self._limiter.now(), default_ttl_seconds=self._s.message_ttl_seconds
        )

    def accept(self, fields: Mapping[str, object]) -> Accepted:
        """Record a valid message (or return the one its idempotency key names).

        Raises InvalidMessage or IdempotencyConflict (both ValueError) for bad input.
        """
        accepted = self._messages.accept(self.validated(fields))
        if not accepted.created:
            log.info("idempotency key reused: message %s already accepted", accepted.id)
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


#: The order of `send_message`'s parameters when a producer passes them positionally.
POSITIONAL_ORDER = ("phone", "text", "contact_id", "idempotency_key", "ttl_seconds", "campaign")


def positional_fields(args: tuple[object, ...]) -> dict[str, object]:
    """`send_message(phone, text, contact_id, ...)` called positionally, mapped to names."""
    if len(args) > len(POSITIONAL_ORDER):
        raise InvalidMessage(f"too many positional arguments ({len(args)}); use keywords")
    return dict(zip(POSITIONAL_ORDER, args, strict=False))


def message_id_from(value: object) -> uuid.UUID:
    """The deliver task's argument; a malformed id is a programming error, not input."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
