"""Phone numbers: parse any common format (default region BR) to digits-only E.164, and mask."""

from __future__ import annotations

import functools

import phonenumbers

DEFAULT_REGION = "BR"
MAX_RAW_LENGTH = 64


class InvalidPhone(ValueError):
    """The input is not a valid phone number."""


#: Distinct (raw, region) inputs whose normalized form is remembered per process. A doctor
#: gets many messages, and parsing is the costliest step of intake (bench/).
NORMALIZED_CACHE_SIZE = 65_536


def normalize_phone(raw: object, region: str = DEFAULT_REGION) -> str:
    """`"+55 11 99999-8888"` → `"5511999998888"` (E.164 digits, no plus), as Evolution wants."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidPhone("phone must be a non-empty string")
    if len(raw) > MAX_RAW_LENGTH:
        raise InvalidPhone(f"phone is longer than {MAX_RAW_LENGTH} characters")
    return _normalize(raw, region)


@functools.lru_cache(maxsize=NORMALIZED_CACHE_SIZE)
def _normalize(raw: str, region: str) -> str:
    """Valid numbers only are cached: an invalid one raises, and exceptions are not kept."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"phone {mask_phone(raw)!r} cannot be parsed: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhone(f"phone {mask_phone(raw)!r} is not a valid number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def mask_phone(phone: str) -> str:
    """Keep the first 4 and last 2 digits: `5511999998888` → `5511*******88` (logs, Flower)."""
    digits = "".join(ch for ch in str(phone) if ch.isdigit())
    if len(digits) <= 6:
        return "*" * len(digits)
    return digits[:4] + "*" * (len(digits) - 6) + digits[-2:]


def mask_id(value: str | None) -> str:
    """A contact id for logs: the first 8 characters; phones masked."""
    if value is None:
        return "-"
    if value.isdigit():
        return mask_phone(value)
    return value[:8] + ("…" if len(value) > 8 else "")
