"""The worker's consumer: a broker message that is not a well-formed task never crashes it.

Celery's consumer already survives some bad messages (undecodable or refused content, an
unregistered task name, no task name at all) by logging the whole body and acknowledging
them. Others kill it: a protocol-2 message whose body is not `[args, kwargs, embed]`
(`{"phone": ...}`, `[[]]`) raises `ValueError: not enough values to unpack` out of
`Request.__init__`, an "Unrecoverable error"; the message is restored and kills the next
worker too.

`GuardedConsumer` (the app's `worker_consumer`) checks each task message's headers and body
before Celery builds a request from it, and turns each of Celery's own refusals into the
same outcome: the message goes to the dead-letter list with its reason
(worker/broker/deadletters.py), is acknowledged, and is logged once, phones masked, body
bounded. A malformed message that slips past the check and raises while Celery reads it
is set aside the same way.
"""

from __future__ import annotations

import binascii
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from celery import signals
from celery.worker.consumer.consumer import Consumer
from vine import promise  # type: ignore[import-untyped]

from worker.broker.deadletters import set_aside

log = logging.getLogger("zapdispatch.consumer")

#: What reading a malformed message raises inside Celery (never an infrastructure error).
MALFORMED = (ValueError, TypeError, KeyError, AttributeError, IndexError, binascii.Error)


def task_body_problem(message: Any, registered: Mapping[str, Any]) -> str | None:
    """Why a protocol-2 task message cannot become a request, or None.

    Only messages of a registered task are checked here: Celery's own handlers refuse the
    others (no task name, an unknown one) and content it cannot or must not decode."""
    headers = message.headers
    if not isinstance(headers, Mapping) or headers.get("task") not in registered:
        return None
    if not isinstance(headers.get("id"), str):
        return "task message headers have no id string"
    try:
        body = message.payload  # decoded once: kombu caches it for the request
    except Exception:  # Celery's on_decode_error / on_invalid_task report it
        return None
    return body_problem(body)


def body_problem(body: Any) -> str | None:
    """Why a decoded protocol-2 body is not `[args (list), kwargs (object), embed (object)]`."""
    if not isinstance(body, list | tuple) or len(body) != 3:
        return "task message body is not [args, kwargs, embed]"
    args, kwargs, embed = body
    checks = (
        (isinstance(args, list | tuple), "task message args is not a list"),
        (isinstance(kwargs, Mapping), "task message kwargs is not an object"),
        (embed is None or isinstance(embed, Mapping), "task message embed is not an object"),
    )
    return next((reason for ok, reason in checks if not ok), None)


def raw_message(message: Any) -> str:
    """The message as it travelled on the broker (kombu's envelope), for the dead letter
    (its log line and listing show the decoded body, masked: deadletters.preview)."""
    raw = getattr(message, "_raw", None)
    if isinstance(raw, Mapping):
        try:
            return json.dumps(raw, ensure_ascii=False)
        except (TypeError, ValueError):
            pass
    body = message.body
    return body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)


class GuardedConsumer(Consumer):  # type: ignore[misc]
    """Celery's consumer with every bad task message set aside as a dead letter."""

    def create_task_handler(self, promise: Callable[..., Any] = promise) -> Callable[[Any], Any]:
        handle = super().create_task_handler(promise)
        strategies = self.strategies

        def on_task_received(message: Any) -> Any:
            problem = task_body_problem(message, strategies)
            if problem is not None:
                return self.set_aside(message, problem)
            try:
                return handle(message)
            except MALFORMED as exc:
                if message.acknowledged:
                    raise
                return self.set_aside(message, f"malformed task message: {exc!r}")

        return on_task_received

    def set_aside(self, message: Any, reason: str) -> None:
        """Dead-letter `message` with `reason`, log it once and acknowledge it."""
        queue = str((message.delivery_info or {}).get("routing_key") or "")
        with message.channel.conn_or_acquire() as client:
            set_aside(client, reason, queue, "consumer", raw_message(message))
        if not message.acknowledged:
            message.ack_log_error(log, self.connection_errors)

    def on_decode_error(self, message: Any, exc: Exception) -> None:
        self.set_aside(message, f"cannot decode the message body: {exc}")

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self.set_aside(message, "not a Celery task message (no task name)")
        signals.task_rejected.send(sender=self, message=message, exc=None)

    def on_unknown_task(self, body: Any, message: Any, exc: Exception) -> None:
        headers = message.headers if isinstance(message.headers, Mapping) else {}
        name, task_id = headers.get("task"), headers.get("id")
        self.set_aside(message, f"unregistered task {name!r}")
        if self.event_dispatcher and task_id:
            self.event_dispatcher.send(
                "task-failed", uuid=task_id, exception=f"NotRegistered({name!r})"
            )
        signals.task_unknown.send(sender=self, message=message, exc=exc, name=name, id=task_id)

    def on_invalid_task(self, body: Any, message: Any, exc: Exception) -> None:
        self.set_aside(message, f"invalid task message: {exc}")
        signals.task_rejected.send(sender=self, message=message, exc=exc)
