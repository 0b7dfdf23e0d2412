"""Broker messages a dead consumer fetched and never acknowledged, put back on their queue.

kombu restores an unacknowledged message only once it is older than the visibility
timeout (an hour by default). For a consumer known dead (worker/heartbeat.py), the sweep
restores its messages at once, through the transport's own restore (kombu's transaction on
the `unacked` entry: a message acknowledged meanwhile is left alone; one that cannot be
restored goes to the dead letters).
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery


class HeldMessages:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def restore(self, delivery_tags: Sequence[str]) -> int:
        """Put each message back at the head of its queue; returns how many were asked."""
        if not delivery_tags:
            return 0
        with self._app.connection_for_write() as conn:
            qos = conn.default_channel.qos
            for tag in delivery_tags:
                qos.restore_by_tag(tag)
        return len(delivery_tags)
