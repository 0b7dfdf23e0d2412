"""Producer input → a validated `NewMessage`, or `InvalidMessage` with a reason a person can read.

Pure: no I/O. The same rules serve `tasks.enqueue_message` (which raises before queueing
anything) and the `zapdispatch.send_message` task (which records the message `failed` with
the reason); the task's positional arguments are mapped to names here too, and the deliver
task's message id parsed. `worker/intake.py` records what these functions accept.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta

from models.message_store import NewMessage, RejectedMessage
from models.views import to_datetime
from worker.phones import InvalidPhone, normalize_phone

MAX_TEXT_CHARS = 4096
MAX_CONTACT_ID_CHARS = 128
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_TTL_SECONDS = 30 * 24 * 3600
#: What JavaScript's `String.prototype.trim()` strips (Evolution validates `text` after it):
#: ECMAScript white space and line terminators, among them U+FEFF and the no-break spaces,
#: which Python's `str.strip()` partly keeps.
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
MAX_CAMPAIGN_CHARS = 100
KNOWN_FIELDS = frozenset(
    {"phone", "text", "contact_id", "idempotency_key", "ttl_seconds", "campaign"}
)


class InvalidMessage(ValueError):
    """The producer's input cannot become a message; `str(exc)` says why."""


def validate(fields: Mapping[str, object], *, now: float, default_ttl_seconds: int) -> NewMessage:
    """Check and normalize producer keywords; `now` is unix seconds. Raises InvalidMessage."""
    _reject_unknown(fields)
    phone = _phone(fields.get("phone"))
    text = _text(fields.get("text"))
    contact_id = _optional_str(fields.get("contact_id"), "contact_id", MAX_CONTACT_ID_CHARS)
    key = _optional_str(fields.get("idempotency_key"), "idempotency_key", MAX_IDEMPOTENCY_KEY_CHARS)
    ttl = _ttl(fields.get("ttl_seconds"), default_ttl_seconds)
    campaign = _optional_str(fields.get("campaign"), "campaign", MAX_CAMPAIGN_CHARS)
    contact = contact_id or phone
    return NewMessage(
        id=uuid.uuid4(),
        contact_id=contact,
        phone=phone,
        text=text,
        content_hash=content_hash(phone, text, contact),
        idempotency_key=key,
        expires_at=to_datetime(now) + timedelta(seconds=ttl),
        created_at=to_datetime(now),
        campaign=campaign,
    )


def rejection(fields: Mapping[str, object], reason: str, *, now: float) -> RejectedMessage:
    """A `failed` record of input that did not validate; oversize values are cut and values
    PostgreSQL cannot store (NUL, lone surrogates) are escaped, so the record always fits."""
    raw_phone = fields.get("phone")
    text = fields.get("text")
    key = fields.get("idempotency_key")
    campaign = fields.get("campaign")
    return RejectedMessage(
        id=uuid.uuid4(),
        raw_phone=storable(raw_phone if isinstance(raw_phone, str) else repr(raw_phone)),
        text=storable((text if isinstance(text, str) else repr(text))[:MAX_TEXT_CHARS]),
        content_hash=content_hash(
            repr(raw_phone), repr(text)[:100_000], repr(fields.get("contact_id"))
        ),
        idempotency_key=key
        if isinstance(key, str)
        and len(key) <= MAX_IDEMPOTENCY_KEY_CHARS
        and _unstorable(key) is None
        else None,
        reason=storable(reason),
        now=to_datetime(now),
        campaign=campaign
        if isinstance(campaign, str) and 0 < len(campaign) <= MAX_CAMPAIGN_CHARS
        else None,
    )


def storable(value: str) -> str:
    """`value` with what PostgreSQL text cannot hold written as escapes: NUL as `\\x00`,
    a lone surrogate as `\\udXXX`."""
    escaped = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return escaped.replace("\x00", "\\x00")


def _unstorable(value: str) -> str | None:
    """Why PostgreSQL cannot store `value` as text, or None when it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode text)"
    return None


def _require_storable(value: str, name: str) -> str:
    why = _unstorable(value)
    if why is not None:
        raise InvalidMessage(f"{name} {why}")
    return value


def content_hash(phone: str, text: str, contact_id: str) -> str:
    """Fingerprint of what an idempotency key promises: same recipient, contact and text."""
    payload = json.dumps([phone, contact_id, text], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def _reject_unknown(fields: Mapping[str, object]) -> None:
    unknown = sorted(set(fields) - KNOWN_FIELDS)
    if unknown:
        raise InvalidMessage(f"unknown argument(s): {', '.join(unknown)}")


def _phone(value: object) -> str:
    if value is None:
        raise InvalidMessage("phone is required")
    try:
        return normalize_phone(value)
    except InvalidPhone as exc:
        raise InvalidMessage(str(exc)) from None


def _text(value: object) -> str:
    if value is None:
        raise InvalidMessage("text is required")
    if not isinstance(value, str):
        raise InvalidMessage(f"text must be a string, got {type(value).__name__}")
    if not value.strip(JS_WHITESPACE) or not value.strip():
        raise InvalidMessage("text is empty (only white space, which Evolution refuses)")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidMessage(f"text has {len(value)} characters; WhatsApp allows {MAX_TEXT_CHARS}")
    return _require_storable(value, "text")


def _optional_str(value: object, name: str, max_chars: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"{name} must be a string, got {type(value).__name__}")
    if not value.strip() or len(value) > max_chars:
        raise InvalidMessage(f"{name} must have 1..{max_chars} characters")
    return _require_storable(value, name)


def _ttl(value: object, default: int) -> int:
    """Seconds until the message expires instead of being sent."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"ttl_seconds must be an integer, got {type(value).__name__}")
    if value <= 0:
        raise InvalidMessage(
            f"ttl_seconds must be positive (the message would already be expired), got {value}"
        )
    if value > MAX_TTL_SECONDS:
        raise InvalidMessage(f"ttl_seconds must be at most {MAX_TTL_SECONDS}")
    return value


#: The order of `send_message`'s parameters when a producer passes them positionally.
POSITIONAL_ORDER = ("phone", "text", "contact_id", "idempotency_key", "ttl_seconds", "campaign")


def positional_fields(args: tuple[object, ...]) -> dict[str, object]:
    """`send_message(phone, text, contact_id, ...)` called positionally, mapped to names."""
    if len(args) > len(POSITIONAL_ORDER):
        raise InvalidMessage(f"too many positional arguments ({len(args)}); use keywords")
    return dict(zip(POSITIONAL_ORDER, args, strict=False))


def call_fields(args: tuple[object, ...], kwargs: Mapping[str, object]) -> dict[str, object]:
    """`send_message(*args, **kwargs)` as named fields. An argument given both by position and
    by keyword is an error (Python itself would raise TypeError), never silently resolved."""
    fields = positional_fields(args)
    both = [name for name in fields if name in kwargs]
    if both:
        raise InvalidMessage(
            f"argument(s) given both by position and by keyword: {', '.join(both)}"
        )
    return {**fields, **kwargs}


def message_id_from(value: object) -> uuid.UUID:
    """The deliver task's argument; a malformed id is a programming error, not input."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
