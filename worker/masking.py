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
    """Phones masked and texts shortened, by argument name; other values untouched."""
    if key in PHONE_KEYS and isinstance(value, str):
        return mask_phone(value)
    if key in TEXT_KEYS and isinstance(value, str):
        return shorten(value)
    return value


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


def _repr(value: Any) -> str:
    """Celery's `saferepr` (bounded work on any input), or the builtin `repr` when every item
    is a short scalar: the same text, at a tenth of the CPU. Runs once per task received,
    in the worker's consumer thread."""
    if _plain(value):
        return repr(value)
    return str(saferepr(value))


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


#: A bare phone number in free text: 10 to 15 digits, optionally after "+", not inside a word.
PHONE_IN_TEXT = re.compile(r"(?<![\w+])\+?\d{10,15}(?!\w)")


def mask_phones_in(text: str) -> str:
    """Every bare phone number in `text` masked (`5511*******88`)."""
    return PHONE_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)


class PhoneMaskingFilter(logging.Filter):
    """Masks phone numbers in every record a handler emits, including third-party lines
    (e.g. Celery's "can't decode message body", which prints the raw body)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_phones_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


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
