"""What Flower (and worker logs) show of task arguments: phones masked, text shortened.

Flower displays the `argsrepr`/`kwargsrepr` of task events. The worker's `task-received`
event takes them from its `Request` object, so `MaskedRequest` (set on the tasks) recomputes
them from the real arguments; `before_task_publish` rewrites the message headers for tasks
published from this code base too (retries, `enqueue_message`, `send_task`), so the
producer's `task-sent` event and the broker copy carry no full number either.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger, before_task_publish
from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from worker.phones import mask_phone

#: Characters of message text kept in task reprs.
TEXT_PREVIEW_CHARS = 20
PHONE_KEYS = frozenset({"phone", "number", "raw_phone"})
TEXT_KEYS = frozenset({"text"})
#: Positional parameters of `zapdispatch.send_message(phone, text, ...)`.
POSITIONAL_NAMES = ("phone", "text")
MASKED_TASK_PREFIX = "zapdispatch."


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


def args_repr(args: Any) -> str:
    """The repr Flower shows for positional arguments (at most 1024 characters)."""
    return _repr(masked_args(args) if isinstance(args, list | tuple) else args)


def kwargs_repr(kwargs: Any) -> str:
    """The repr Flower shows for keyword arguments (at most 1024 characters)."""
    return _repr(masked_kwargs(kwargs) if isinstance(kwargs, Mapping) else kwargs)


#: Values short enough for the builtin `repr`: the usual task arguments once masked.
_PLAIN_MAX_CHARS = 256
_PLAIN_MAX_ITEMS = 16


#: Longest repr Flower shows of a task's positional or keyword arguments (characters).
MAX_REPR_CHARS = 1024


def _repr(value: Any) -> str:
    """Celery's `saferepr` (bounded work on any input), or the builtin `repr` when every item
    is a short scalar: the same text, at a tenth of the CPU. Then any phone number left in
    it (an int, a list item, a number inside a text) is masked, and it is cut to
    MAX_REPR_CHARS. Runs once per task received, in the worker's consumer thread."""
    text = repr(value) if _plain(value) else str(saferepr(value, maxlen=2 * MAX_REPR_CHARS))
    text = mask_phones_in(text)
    if len(text) > MAX_REPR_CHARS:
        return text[: MAX_REPR_CHARS - 1] + "…"
    return text


def _plain(value: Any) -> bool:
    if not isinstance(value, dict | list) or len(value) > _PLAIN_MAX_ITEMS:
        return False
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return all(isinstance(k, str | int) and _short_scalar(v) for k, v in items)


def _short_scalar(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _PLAIN_MAX_CHARS
    return value is None or isinstance(value, bool | int | float)


class MaskedRequest(Request):  # type: ignore[misc]
    """A worker request whose `argsrepr`/`kwargsrepr` never hold a full phone or text."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._argsrepr = args_repr(self._args)
        self._kwargsrepr = kwargs_repr(self._kwargs)


@before_task_publish.connect  # type: ignore[untyped-decorator]
def _mask_published_headers(
    body: Any = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    """Protocol 2 messages: body is (args, kwargs, embed); rewrite the repr headers."""
    if not headers or not str(headers.get("task", "")).startswith(MASKED_TASK_PREFIX):
        return
    if isinstance(body, list | tuple) and len(body) >= 2:
        headers["argsrepr"] = args_repr(body[0])
        headers["kwargsrepr"] = kwargs_repr(body[1])


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


@after_setup_logger.connect  # type: ignore[untyped-decorator]
@after_setup_task_logger.connect  # type: ignore[untyped-decorator]
def _mask_worker_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None:
        install_log_masking(logger)
