"""kombu's Redis transport with a crash-safe fetch: a killed consumer loses no message.

Stock kombu takes a message with `BRPOP` and then, in a second command, copies it into the
`unacked` hash that late acknowledgement and the visibility-timeout restore rely on. A
worker killed between the two (SIGKILL, OOM killer, a lost node), or shut down warm while
the reply sits unread in its socket, loses that message for good: it is in neither the
queue nor `unacked` (kombu#305, celery#4354, celery#7950). Our chaos test's worker kills
lost tasks that way in two CI runs (4 of 500 once, 1 of 500 the other time).

This transport keeps everything else of kombu's and replaces only the consumer's fetch:

* **fetch**: `fetch.lua` pops the next message and writes it to `unacked` and
  `unacked_index` in the same atomic script, so whatever happens to the consumer after
  Redis ran it, the message is either still queued or restorable;
* **wait**: when every queue is empty, the consumer blocks on `BLMOVE q q RIGHT RIGHT`, which
  returns as soon as `q` holds a message and leaves the list exactly as it was; then it
  fetches again. Redis has no blocking wait over several lists that does not pop, so the
  waits take turns over the consumed queues, WAIT_SECONDS each: a message on a queue that
  is not the one being waited on is fetched within WAIT_SECONDS.

A channel with a `no_ack` consumer keeps kombu's own fetch (nothing would
ever acknowledge what the script recorded). Needs Redis 6.2 or later (`BLMOVE`), checked
when a channel starts consuming.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from importlib.resources import files
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

#: Longest one empty-queue wait blocks before the next queue's turn (seconds).
WAIT_SECONDS = 0.25

FETCH_SCRIPT = files("worker.broker").joinpath("fetch.lua").read_text(encoding="utf-8")
#: The id Redis caches the script under (EVALSHA).
FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode(), usedforsecurity=False).hexdigest()

_FETCH = "EVALSHA"
_WAIT = "BLMOVE"


class RedisTooOld(RuntimeError):
    """The broker's Redis lacks BLMOVE (Redis 6.2, 2021), which the idle wait needs."""


def require_blmove(server_info: dict[str, Any]) -> None:
    """Refuse to consume from a Redis older than 6.2, with a message that says so."""
    version = str(server_info.get("redis_version", "0"))
    major_minor = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if major_minor < (6, 2):
        raise RedisTooOld(f"the broker needs Redis 6.2 or later (BLMOVE); this one is {version}")


class CrashSafeQoS(kombu_redis.QoS):  # type: ignore[misc]
    """kombu's Redis QoS that skips the `unacked` write the fetch script already made."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.recorded_tag == delivery_tag:
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)


class CrashSafeChannel(kombu_redis.Channel):  # type: ignore[misc]
    """A Redis channel whose consumer fetch records the message in the same step."""

    QoS = CrashSafeQoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Delivery tag that fetch.lua recorded for the message being delivered right now.
        self.recorded_tag: str | None = None
        self._sent: str | None = None
        self._wait_next = False
        self._fetch_order: list[str] = []
        self._no_ack_queues: set[str] = set()
        self._script_cached = False
        self._server_checked = False

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack and queue not in self._fanout_queues:  # fanout queues never use the fetch
            self._no_ack_queues.add(queue)
        if queue not in self._fanout_queues and not self._server_checked:
            require_blmove(self.client.info("server"))
            self._server_checked = True
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_cancel(self, consumer_tag: str) -> Any:
        queue = self._tag_to_queue.get(consumer_tag)
        self._no_ack_queues.discard(queue)
        return super().basic_cancel(consumer_tag)

    def _brpop_start(self, timeout: float = 1) -> None:
        if self._no_ack_queues:
            self._sent = None
            super()._brpop_start(timeout)
            return
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        self._in_poll = self.client.connection
        if self._wait_next:
            self._send_wait(queues[0])
        else:
            self._send_fetch(queues)

    def _send_fetch(self, queues: Sequence[str]) -> None:
        """Ask for the next message of `queues` (priority steps first), recorded as unacked."""
        self._fetch_order = [self._q_for_pri(q, p) for p in self.priority_steps for q in queues]
        prefix = self.global_keyprefix
        keys = [prefix + self.unacked_key, prefix + self.unacked_index_key]
        keys += [prefix + key for key in self._fetch_order]
        self._sent = _FETCH
        # The first fetch of a connection (and one after a NOSCRIPT) sends the whole script.
        script = ("EVALSHA", FETCH_SHA) if self._script_cached else ("EVAL", FETCH_SCRIPT)
        self._script_cached = True
        self.client.connection.send_command(*script, len(keys), *keys, repr(time.time()))

    def _send_wait(self, queue: str) -> None:
        """Block until `queue` holds a message or WAIT_SECONDS pass, without taking it."""
        key = self.global_keyprefix + queue
        self._sent = _WAIT
        self._queue_cycle.rotate(queue)
        self.client.connection.send_command("BLMOVE", key, key, "RIGHT", "RIGHT", WAIT_SECONDS)

    def _brpop_read(self, **options: Any) -> bool:
        sent, self._sent = self._sent, None
        if sent is None:
            return bool(super()._brpop_read(**options))
        try:
            reply = self._read_reply(sent, **options)
            if sent == _WAIT or not reply:
                self._wait_next = sent == _FETCH
                raise Empty()
            self._wait_next = False
            self._deliver_fetched(*reply)
            return True
        finally:
            self._in_poll = None

    def _read_reply(self, command: str, **options: Any) -> Any:
        try:
            return self.client.parse_response(self.client.connection, command, **options)
        except NoScriptError:
            # Redis restarted or flushed its scripts: nothing was popped; send it in full.
            self._script_cached = False
            raise Empty() from None
        except self.connection_errors:
            # As kombu's own read: disconnect, so the next poll reconnects.
            self._script_cached = False
            self.client.connection.disconnect()
            raise

    def _deliver_fetched(self, position: int, raw: bytes, recorded: int) -> None:
        """Hand a fetched message to its consumer; `position` is 1-based in the fetch order."""
        key = self._fetch_order[position - 1]
        queue = key.rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(queue)
        payload = loads(raw)
        self.recorded_tag = payload["properties"]["delivery_tag"] if recorded else None
        try:
            self.connection._deliver(payload, queue)
        finally:
            self.recorded_tag = None


class CrashSafeTransport(kombu_redis.Transport):  # type: ignore[misc]
    """`redis://` and `rediss://` broker URLs, with CrashSafeChannel's fetch."""

    Channel = CrashSafeChannel
