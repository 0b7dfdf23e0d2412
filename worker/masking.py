"""Phones masked and texts shortened, in task arguments and in any text (log lines).

Plain functions with no Celery in them; worker/celery_masking.py applies them to what Celery
shows (Flower's `argsrepr`/`kwargsrepr`, worker log handlers).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from worker.phones import mask_phone

#: Characters of message text kept in task reprs.
TEXT_PREVIEW_CHARS = 20
PHONE_KEYS = frozenset({"phone", "number", "raw_phone"})
TEXT_KEYS = frozenset({"text"})
#: Positional parameters of `zapdispatch.send_message(phone, text, ...)`.
POSITIONAL_NAMES = ("phone", "text")
MASKED_TASK_PREFIX = "zapdispatch."
#: Values short enough for the builtin `repr`: the usual task arguments once masked.
_PLAIN_MAX_CHARS = 256
_PLAIN_MAX_ITEMS = 16


def shorten(text: str, limit: int = TEXT_PREVIEW_CHARS) -> str:
    """`text` cut to `limit` characters, with an ellipsis and the full length when cut."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} chars)"


def mask_value(key: str, value: Any) -> Any:
    """Phones masked (whatever their type) and texts shortened, by argument name; other
    values untouched here (their repr is masked as text: see `_repr`)."""
    if key in PHONE_KEYS:
        return mask_phone_value(value)
    if key in TEXT_KEYS and isinstance(value, str):
        return shorten(value)
    return value


def mask_phone_value(value: Any, depth: int = 0) -> Any:
    """A phone argument masked: a string or an integer, or each item of a list or dict of
    them (at most _PLAIN_MAX_ITEMS items, two levels deep); anything else becomes `'?'`."""
    if isinstance(value, str):
        return mask_phone(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return mask_phone(str(value))
    if depth < 2 and isinstance(value, list | tuple):
        return [mask_phone_value(item, depth + 1) for item in value[:_PLAIN_MAX_ITEMS]]
    if depth < 2 and isinstance(value, Mapping):
        items = list(value.items())[:_PLAIN_MAX_ITEMS]
        return {str(k)[:_PLAIN_MAX_CHARS]: mask_phone_value(v, depth + 1) for k, v in items}
    return value if value is None or isinstance(value, bool) else "?"


def masked_args(args: Sequence[Any]) -> list[Any]:
    names = (*POSITIONAL_NAMES, *[""] * max(0, len(args) - len(POSITIONAL_NAMES)))
    return [mask_value(name, value) for name, value in zip(names, args, strict=False)]


def masked_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {key: mask_value(key, value) for key, value in kwargs.items()}


#: A phone number in free text, not inside a word (but right after an escape such as `\n`
#: or `\x0c` in a repr, as in a pickled body): 10 to 15 bare digits optionally after "+",
#: or written the usual ways, `+55 (11) 99999-8888`, `55 11 99999 8888`, `(11) 99999-8888`.
PHONE_IN_TEXT = re.compile(
    r"(?:(?<=\\[a-z])|(?<=\\x[0-9a-fA-F]{2})|(?<=\\u[0-9a-fA-F]{4})|(?<![\w+]))"
    r"(?:\+?\d{10,15}|\+?(?:\d{1,3}[ .-]?)?\(?\d{2,3}\)?[ .-]?\d{4,5}[ .-]?\d{4})"
    r"(?!\w)"
)
#: Digits a match must hold to be a phone number (E.164: at most 15).
PHONE_DIGITS = range(10, 16)


def _mask_match(match: re.Match[str]) -> str:
    found = match.group(0)
    digits = sum(ch.isdigit() for ch in found)
    return mask_phone(found) if digits in PHONE_DIGITS else found


def mask_phones_in(text: str) -> str:
    """Every phone number in `text` masked (`5511*******88`), whatever its format."""
    return PHONE_IN_TEXT.sub(_mask_match, text)


class PhoneMaskingFilter(logging.Filter):
    """Masks phone numbers in every record a handler emits, including third-party lines
    (e.g. Celery's "can't decode message body", which prints the raw body)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:  # a traceback's exception messages too
            record.exc_text = mask_phones_in(_TRACEBACKS.formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = mask_phones_in(record.exc_text)
        return True


_TRACEBACKS = logging.Formatter()


def install_log_masking(logger: logging.Logger) -> None:
    """Attach the filter to every handler of `logger` (once)."""
    for handler in logger.handlers:
        if not any(isinstance(f, PhoneMaskingFilter) for f in handler.filters):
            handler.addFilter(PhoneMaskingFilter())
