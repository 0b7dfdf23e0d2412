"""What one delivery run ends in, and how a run asks to be run again."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from models.message_values import Accepted


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
