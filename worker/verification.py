"""Asking Evolution whether a send whose outcome is unknown went out.

A send is unknown when its request was written and no trustworthy answer came back (a read
timeout, a reset, a proxy's 5xx, a worker that died holding the claim). Before such a
message is sent again, the chat is looked up on the instance that tried
(`POST /chat/findMessages/{instance}`): an outgoing message with the same text, stamped no
earlier than the attempt's start (less CLOCK_SKEW_SECONDS), means it went out. Only after
LOOK_UPS_BEFORE_RESEND look-ups found nothing is it sent again; when Evolution cannot be
asked, UNCERTAIN_SEND_POLICY decides (the caller applies it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from worker.evolution import (
    EvolutionClient,
    EvolutionError,
    LookUpUnavailable,
    StoredMessage,
)

#: How far Evolution's clock may be behind ours, seconds: a stored message stamped up to
#: this long before the attempt began still counts as the attempt's.
CLOCK_SKEW_SECONDS = 120.0
#: Look-ups that must find nothing, a grace apart, before the message is sent again.
LOOK_UPS_BEFORE_RESEND = 2


class Verdict(StrEnum):
    FOUND = "found"  # Evolution has the message: it was sent
    ABSENT = "absent"  # Evolution has no such message (so far)
    UNAVAILABLE = "unavailable"  # Evolution cannot be asked (no route, keeps no messages)
    NOT_NOW = "not_now"  # Evolution could not be reached: ask again later


@dataclass(frozen=True, slots=True)
class LookUp:
    verdict: Verdict
    provider_message_id: str | None = None
    detail: str = ""


def matching(stored: Sequence[StoredMessage], text: str, since: float) -> StoredMessage | None:
    """The earliest outgoing message with exactly `text`, stamped at or after `since`
    (unix seconds) less CLOCK_SKEW_SECONDS; None when there is none."""
    earliest = since - CLOCK_SKEW_SECONDS
    found = [m for m in stored if m.from_me and m.text == text and m.timestamp >= earliest]
    return min(found, key=lambda m: m.timestamp, default=None)


def look_up(
    evolution: EvolutionClient, instance: str, phone: str, text: str, since: float
) -> LookUp:
    """What Evolution says about a send of `text` to `phone` through `instance` that began
    at `since` (unix seconds)."""
    try:
        found = matching(evolution.sent_messages(instance, phone), text, since)
        if found is not None:
            return LookUp(Verdict.FOUND, found.provider_message_id)
        if not evolution.keeps_messages(instance):
            return LookUp(Verdict.UNAVAILABLE, detail="Evolution keeps no sent messages")
        return LookUp(Verdict.ABSENT)
    except LookUpUnavailable as exc:
        return LookUp(Verdict.UNAVAILABLE, detail=str(exc))
    except EvolutionError as exc:
        return LookUp(Verdict.NOT_NOW, detail=str(exc))
