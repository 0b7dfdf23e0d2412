"""How Evolution's answers and transport failures become `worker.evolution.errors`.

`to_error` is the one place where an HTTP answer or a transport failure is classified;
the clients (`worker.evolution.client`) call it at the edge. Messages name the instance and
a masked phone number, never the API key.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
import time
from typing import Any

import httpx

from worker.evolution.errors import (
    EvolutionAuthError,
    EvolutionError,
    EvolutionLicenceRequired,
    InstanceRateLimited,
    InstanceUnavailable,
    RecipientNotOnWhatsApp,
    TransientEvolutionError,
)
from worker.evolution.exchange import ExchangeFailed, HttpAnswer
from worker.phones import mask_phone

_DIGIT_RUN = re.compile(r"\d{6,}")
_MAX_DETAIL_CHARS = 200


def to_error(
    failure: HttpAnswer | httpx.HTTPError | ExchangeFailed,
    instance: str | None,
    number: str | None,
) -> EvolutionError:
    """The one place where an HTTP answer or a transport failure becomes an EvolutionError."""
    if isinstance(failure, ExchangeFailed | httpx.HTTPError):
        kind = failure.kind if isinstance(failure, ExchangeFailed) else type(failure).__name__
        return TransientEvolutionError(f"{where(instance, number)}: {kind}", instance=instance)
    status = failure.status
    detail = f"{where(instance, number)}: HTTP {status} {_details(failure)}".rstrip()
    if status == 400 and _says_not_on_whatsapp(failure):
        return RecipientNotOnWhatsApp(detail, instance=instance, status_code=status)
    if status in (400, 404):
        return InstanceUnavailable(detail, instance=instance, status_code=status)
    if status in (401, 403):
        return EvolutionAuthError(detail, instance=instance, status_code=status)
    if status == 429:
        retry_after = _retry_after_seconds(failure.headers.get("retry-after"), time.time())
        return InstanceRateLimited(detail, instance=instance, retry_after_seconds=retry_after)
    return _server_error(failure, instance, detail)


def _server_error(failure: HttpAnswer, instance: str | None, detail: str) -> EvolutionError:
    """5xx, and statuses the contract does not name: retrying is the safe default. The
    licence gate says so; a 500 about the session names the instance as unavailable."""
    status = failure.status
    if status == 503 and is_licence_gate(failure):
        gate = f"{detail}: LICENSE_REQUIRED (Evolution is not activated)"
        return EvolutionLicenceRequired(gate, instance=instance, status_code=status)
    if status == 500 and _says_session_gone(failure):
        return InstanceUnavailable(detail, instance=instance, status_code=status)
    return TransientEvolutionError(detail, instance=instance, status_code=status)


def unexpected(response: HttpAnswer, instance: str | None, why: str) -> EvolutionError:
    message = f"{where(instance, None)}: unexpected answer (HTTP {response.status}): {why}"
    return TransientEvolutionError(message, instance=instance, status_code=response.status)


def where(instance: str | None, number: str | None) -> str:
    where = f"instance {instance!r}" if instance is not None else "Evolution API"
    return f"{where} to {mask_phone(number)}" if number is not None else where


def _server_messages(response: HttpAnswer) -> list[Any]:
    """`response.message` of the contract's error shape, as a list (empty if absent)."""
    try:
        body = response.json()
    except ValueError:
        return []
    inner = body.get("response") if isinstance(body, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    if message is None:
        return []
    return message if isinstance(message, list) else [message]


def has_envelope(response: HttpAnswer) -> bool:
    """Whether an error answer is Evolution's own JSON: its error envelope
    (`{"status", "error", "response"}`) or its licence gate (`{"error": "service not
    activated", "code": "LICENSE_REQUIRED"}`, 503). Then Evolution refused before sending.
    A proxy's 5xx has no such body."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    envelope = isinstance(body.get("status"), int) and ("response" in body or "error" in body)
    return envelope or (isinstance(body.get("error"), str) and isinstance(body.get("code"), str))


def is_licence_gate(response: HttpAnswer) -> bool:
    """Whether an answer is Evolution's licence gate: `{"error": "service not activated",
    "code": "LICENSE_REQUIRED", ...}` (HTTP 503, on every business route, before any guard)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("code") == "LICENSE_REQUIRED"


#: `response.message` strings of Evolution's 500s about the instance rather than the request:
#: a dead session whose recipient is not in the on-WhatsApp cache (Baileys' error), and an
#: instance in the database but not loaded in memory (a JavaScript TypeError).
_SESSION_GONE = ("Connection Closed", "Cannot read properties of undefined")


def _says_session_gone(response: HttpAnswer) -> bool:
    messages = _server_messages(response)
    return any(isinstance(m, str) and m.startswith(_SESSION_GONE) for m in messages)


def _says_not_on_whatsapp(response: HttpAnswer) -> bool:
    messages = _server_messages(response)
    return any(isinstance(item, dict) and item.get("exists") is False for item in messages)


def _details(response: HttpAnswer) -> str:
    """The server's messages, phone-like digit runs masked, cut to a sane length."""
    text = "; ".join(str(item) for item in _server_messages(response))
    return _DIGIT_RUN.sub(lambda match: mask_phone(match.group()), text)[:_MAX_DETAIL_CHARS]


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now` (unix seconds); it may be seconds or an HTTP date."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)
