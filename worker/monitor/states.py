"""Evolution connection state → `InstanceStatus`, as the README defines it.

Decisions beyond the interface page:
- The disconnection reasons in BAN_REASON_CODES (default 402 temporary ban, 403 forbidden,
  406 permanent ban) mean banned. Any other code of a closed session (401 logged out, ...)
  maps to `disconnected` with the code in the reason, and raises the offline alert instead.
- The poll and the `connection.update` / `status.instance` webhooks go through these same
  functions, so both sources reach the same status for the same facts.
- An instance Evolution does not know is `disconnected`, reason "unknown to Evolution".
- A probe that failed (timeout, 5xx, refused key) is `disconnected` too: if the health
  check cannot reach an instance, neither can a send. The reason names the failure.
- An instance in Evolution's database but not loaded in memory (connectionState answers
  without `state`) is `disconnected`, reason `NOT_LOADED_REASON`: it cannot send (sendText
  answers 500) until Evolution loads it again. There is no status of its own for it.
- An unrecognised state string is `disconnected` (never `connected` by accident).
"""

from __future__ import annotations

from dataclasses import dataclass

from models.enums import InstanceStatus
from worker.evolution import EvolutionAuthError, EvolutionError, InstanceState
from worker.evolution.bodies import NOT_LOADED

#: BAN_REASON_CODES' default.
DEFAULT_BAN_CODES = frozenset({402, 403, 406})

#: Why Evolution closed a session for good (its disconnection reason codes).
REASON_TEXT = {
    401: "logged out (401): the phone unlinked the device or WhatsApp logged it out",
    402: "closed by WhatsApp (402, temporary ban), will not reconnect by itself",
    403: "banned by WhatsApp (403 forbidden)",
    406: "closed by WhatsApp (406, permanent ban), will not reconnect by itself",
}

UNKNOWN_TO_EVOLUTION = "unknown to Evolution"
NOT_LOADED_REASON = "not loaded in Evolution's memory (connectionState has no state)"


@dataclass(frozen=True, slots=True)
class Observation:
    """What one health check concluded about one instance."""

    status: InstanceStatus
    reason: str | None


def map_state(
    state: str, disconnection_reason: int | None, ban_codes: frozenset[int] = DEFAULT_BAN_CODES
) -> Observation:
    """Map Evolution's `state` (open/connecting/refused/close) and reason code to a status;
    a close with a code in `ban_codes` is a ban."""
    if state == "open":
        return Observation(InstanceStatus.CONNECTED, None)
    if state in ("connecting", "refused"):
        return Observation(InstanceStatus.CONNECTING, f"Evolution reports {state}")
    if state == "close":
        return _closed(disconnection_reason, ban_codes)
    if state == NOT_LOADED:
        return Observation(InstanceStatus.DISCONNECTED, NOT_LOADED_REASON)
    return Observation(InstanceStatus.DISCONNECTED, f"unrecognised Evolution state {state!r}")


def _closed(code: int | None, ban_codes: frozenset[int]) -> Observation:
    if code is not None and code in ban_codes:
        return Observation(InstanceStatus.BANNED, REASON_TEXT.get(code, f"banned (reason {code})"))
    if code is None:
        return Observation(InstanceStatus.DISCONNECTED, "Evolution reports close")
    text = REASON_TEXT.get(code, f"closed (reason {code})")
    return Observation(InstanceStatus.DISCONNECTED, text)


def observe(
    result: InstanceState | EvolutionError | None, ban_codes: frozenset[int] = DEFAULT_BAN_CODES
) -> Observation:
    """One poll result (a state, the error of its probe, or None if absent) → observation."""
    if result is None:
        return Observation(InstanceStatus.DISCONNECTED, UNKNOWN_TO_EVOLUTION)
    if isinstance(result, InstanceState):
        return map_state(result.state, result.disconnection_reason, ban_codes)
    return Observation(InstanceStatus.DISCONNECTED, probe_failure_reason(result))


def probe_failure_reason(error: EvolutionError) -> str:
    """A short reason for a failed probe; never contains the API key."""
    if error.status_code == 404:
        return UNKNOWN_TO_EVOLUTION
    if isinstance(error, EvolutionAuthError):
        return f"Evolution refused the API key (HTTP {error.status_code})"
    if error.status_code is not None:
        return f"health probe failed: HTTP {error.status_code}"
    return f"health probe failed: {type(error).__name__} (no answer)"
