"""Whether Evolution's licence gate is up, as the last health check saw it.

From 2.4 an Evolution server that is not activated answers every business route 503
`LICENSE_REQUIRED`. That is one configuration error of the server, not an outage of every
number: the health check records no status change because of it (`poll.py`), and keeps here,
in Redis, since when (unix seconds) it has seen the gate, so that every alert pass (a run's,
or one a webhook asks for) sees the same condition: one `evolution_licence` alert, reminded
and resolved like the others.
"""

from __future__ import annotations

import logging

import redis

from worker import keys

log = logging.getLogger("zapdispatch.health")

LICENCE_KEY = keys.alert_throttle("health:licence_required_since")


def note_licence_gate(client: redis.Redis[bytes], required: bool, now: float) -> None:
    """Record what a poll saw: the gate up (keeps the first sighting) or gone."""
    if not required:
        client.delete(LICENCE_KEY)
    elif client.set(LICENCE_KEY, repr(now), nx=True):
        log.error("Evolution answers 503 LICENSE_REQUIRED: the server is not activated")


def licence_required_since(client: redis.Redis[bytes]) -> float | None:
    """Unix seconds of the first poll that saw the gate up, None when the last saw it gone."""
    raw = client.get(LICENCE_KEY)
    return float(raw) if raw is not None else None
