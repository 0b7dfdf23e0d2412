"""What Flower (and worker logs) show of task arguments: phones masked, text shortened.

Flower displays the `argsrepr`/`kwargsrepr` of task events. The worker's `task-received`
event takes them from its `Request` object, so `MaskedRequest` (set on the tasks) recomputes
them from the real arguments; `before_task_publish` rewrites the message headers for tasks
published from this code base too (retries, `enqueue_message`, `send_task`), so the
producer's `task-sent` event and the broker copy carry no full number either. Worker log
handlers get the phone-masking filter as Celery sets them up. The signal handlers are
connected when worker/celery_app.py imports this module.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from celery.utils.saferepr import saferepr
from celery.worker.request import Request

from worker.masking import (
    _PLAIN_MAX_CHARS,
    _PLAIN_MAX_ITEMS,
    MASKED_TASK_PREFIX,
    install_log_masking,
    mask_phones_in,
    masked_args,
    masked_kwargs,
)

#: Longest repr Flower shows of a task's positional or keyword arguments (characters).
MAX_REPR_CHARS = 1024


def args_repr(args: Any) -> str:
    """The repr Flower shows for positional arguments (at most 1024 characters)."""
    return _repr(masked_args(args) if isinstance(args, list | tuple) else args)


def kwargs_repr(kwargs: Any) -> str:
    """The repr Flower shows for keyword arguments (at most 1024 characters)."""
    return _repr(masked_kwargs(kwargs) if isinstance(kwargs, Mapping) else kwargs)


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


def _mask_published_headers(
    body: Any = None, headers: dict[str, Any] | None = None, **_: Any
) -> None:
    """Protocol 2 messages: body is (args, kwargs, embed); rewrite the repr headers."""
    if not headers or not str(headers.get("task", "")).startswith(MASKED_TASK_PREFIX):
        return
    if isinstance(body, list | tuple) and len(body) >= 2:
        headers["argsrepr"] = args_repr(body[0])
        headers["kwargsrepr"] = kwargs_repr(body[1])


def _mask_worker_logs(logger: logging.Logger | None = None, **_: Any) -> None:
    if logger is not None:
        install_log_masking(logger)
