"""Dead letters: broker messages that can never become a task, set aside instead of crashing.

A message lands here when it is not a kombu envelope (fetch.lua checks that before
recording it), when Celery cannot turn it into a well-formed task (undecodable or refused
content, an unregistered task name, a body that is not `[args, kwargs, embed]`: see
worker/broker/consumer.py), or when an `unacked` entry cannot be restored. The message is
acknowledged once it is here, and logged once, phones masked and the text bounded.

The list lives in the broker's Redis under worker/keys.py `DEAD_LETTERS`, newest first, each
entry a JSON object `{reason, at, queue, source, message}`: `at` in Unix seconds, `source`
one of `fetch`, `consumer`, `restore`, `message` the raw message as it was found.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from worker.keys import DEAD_LETTERS
from worker.masking import mask_phones_in, shorten

log = logging.getLogger("zapdispatch.deadletters")

#: Characters of the raw message shown in the log line and the CLI listing.
PREVIEW_CHARS = 200

SOURCES = ("fetch", "consumer", "restore")


@dataclass(frozen=True)
class DeadLetter:
    """One set-aside message. `at` is Unix seconds; `message` the raw text, unmasked."""

    reason: str
    at: float
    queue: str
    source: str
    message: str

    def preview(self, limit: int = PREVIEW_CHARS) -> str:
        """The raw message for people: phones masked, at most `limit` characters kept."""
        return preview(self.message, limit)

    def to_json(self) -> dict[str, Any]:
        """For `zapdispatch deadletters list --json`: the preview, never the full message."""
        return {
            "reason": mask_phones_in(self.reason),
            "at": self.at,
            "queue": self.queue,
            "source": self.source,
            "message": self.preview(),
            "message_chars": len(self.message),
        }


def envelope_problem(payload: Any) -> str | None:
    """Why `payload` (decoded JSON) is not a kombu envelope, or None when it is one.

    The rule fetch.lua applies: an object; `properties` an object with a string
    `delivery_tag` and a `delivery_info` object whose `exchange` and `routing_key` are
    strings; `body`, `content-type`, `content-encoding`, `properties.body_encoding` absent
    or strings; `headers` absent or an object."""
    if not isinstance(payload, Mapping):
        return "not a JSON object"
    properties = payload.get("properties")
    if not isinstance(properties, Mapping):
        return "no properties object"
    info = properties.get("delivery_info")
    texts = (
        payload.get("body"),
        payload.get("content-type"),
        payload.get("content-encoding"),
        properties.get("body_encoding"),
    )
    headers = payload.get("headers")
    checks = (
        (isinstance(properties.get("delivery_tag"), str), "no delivery_tag string in properties"),
        (isinstance(info, Mapping), "no delivery_info object in properties"),
        (
            isinstance(info, Mapping)
            and isinstance(info.get("exchange"), str)
            and isinstance(info.get("routing_key"), str),
            "delivery_info lacks an exchange or routing_key string",
        ),
        (
            all(value is None or isinstance(value, str) for value in texts),
            "body, content-type, content-encoding or body_encoding is not a string",
        ),
        (headers is None or isinstance(headers, Mapping), "headers is not an object"),
    )
    return next((reason for ok, reason in checks if not ok), None)


def preview(raw: str | bytes, limit: int = PREVIEW_CHARS) -> str:
    """`raw` for people: a kombu envelope's body decoded (base64 would hide a phone from
    the masking, not from a reader), phones masked, cut to `limit` characters, one line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    text = readable(text[: 64 * limit])
    masked = mask_phones_in(text[: 4 * limit])
    return shorten(masked, limit).replace("\n", "\\n").replace("\r", "\\r")


def readable(text: str) -> str:
    """A kombu envelope as `task <name> body <decoded body repr>`; anything else as it is."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if not isinstance(document, Mapping) or not isinstance(document.get("body"), str):
        return text
    body: str = document["body"]
    properties = document.get("properties")
    if isinstance(properties, Mapping) and properties.get("body_encoding") == "base64":
        with contextlib.suppress(ValueError, binascii.Error):
            body = repr(base64.b64decode(body, validate=True))
    headers = document.get("headers")
    task = headers.get("task") if isinstance(headers, Mapping) else None
    return f"task {task!r} body {body}"


def entry(reason: str, queue: str, source: str, raw: str | bytes, at: float) -> str:
    """The JSON text of one dead-letter entry (fetch.lua writes the same fields)."""
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    document = {"reason": reason, "at": at, "queue": queue, "source": source, "message": message}
    return json.dumps(document, ensure_ascii=False)


def log_set_aside(reason: str, queue: str, source: str, raw: str | bytes) -> None:
    """The one log line of a dead-lettered message (masked, bounded)."""
    log.error(
        "broker message set aside as a dead letter (%s, queue %s): %s; message: %s",
        source,
        queue or "?",
        mask_phones_in(reason),
        preview(raw),
    )


def set_aside(
    client: Any, reason: str, queue: str, source: str, raw: str | bytes, *, at: float | None = None
) -> None:
    """Append one entry to the dead-letter list (newest first) and log it once.

    `client` is any Redis client of the broker (kombu's channel client or ours)."""
    client.lpush(DEAD_LETTERS, entry(reason, queue, source, raw, time.time() if at is None else at))
    log_set_aside(reason, queue, source, raw)


def parse(raw: bytes | str) -> DeadLetter:
    """One stored entry; an entry that is not ours (written by hand) is shown as it is."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, Mapping):
        return DeadLetter("unreadable dead-letter entry", 0.0, "", "", text)
    at = document.get("at")
    return DeadLetter(
        reason=str(document.get("reason", "")),
        at=float(at) if isinstance(at, int | float) else 0.0,
        queue=str(document.get("queue", "")),
        source=str(document.get("source", "")),
        message=str(document.get("message", "")),
    )


class DeadLetterStore:
    """Reads and purges the dead-letter list (the CLI, `zapdispatch status`, `/metrics`)."""

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def count(self) -> int:
        return cast(int, self._redis.llen(DEAD_LETTERS))

    def newest(self, limit: int) -> list[DeadLetter]:
        """The `limit` most recent entries, newest first."""
        if limit <= 0:
            return []
        return [
            parse(raw) for raw in cast(list[bytes], self._redis.lrange(DEAD_LETTERS, 0, limit - 1))
        ]

    def purge(self) -> int:
        """Delete every entry; returns how many there were."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.llen(DEAD_LETTERS)
        pipe.delete(DEAD_LETTERS)
        counted, _ = pipe.execute()
        return int(counted)
