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
* **dead letters**: the script moves a popped message that is not a kombu envelope to the
  dead-letter list (worker/broker/deadletters.py) instead of recording it; a recorded
  message whose delivery still fails for a reason of its own (a body kombu cannot decode,
  a message Celery cannot turn into a request) is set aside there too and acknowledged,
  and so is an `unacked` entry that cannot be restored. No broker message crashes the
  consumer or comes back after the visibility timeout to crash it again;
* **owners**: the script also records which consumer process (models/claimant.py) fetched
  each message, so that when that process stops beating (worker/heartbeat.py) the sweep
  restores its messages at once rather than after the visibility timeout;
* **wait**: when every queue is empty, the consumer blocks on `BLMOVE q q RIGHT RIGHT`, which
  returns as soon as `q` holds a message and leaves the list exactly as it was; then it
  fetches again. Redis has no blocking wait over several lists that does not pop, so the
  waits take turns over the consumed queues, one blocking timeout each (`brpop_timeout`,
  WAIT_SECONDS unless the `polling_interval` transport option sets it): a message on a
  queue that is not the one being waited on is fetched within that timeout.

Two fixes kombu made to these methods after 5.5.4 are carried here, marked where they sit:
the blocking timeout taken from `polling_interval` (kombu 5.6.0, PR #2346) and a pending
streaming re-authentication flushed onto the consumer's connection after each read
(kombu PR #2563).

A channel with a `no_ack` consumer keeps kombu's own fetch (nothing would ever acknowledge
what the script recorded), blocking for the same timeout. Needs Redis 6.2 or later
(`BLMOVE`), checked when a channel starts consuming.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Sequence
from importlib.resources import files
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import NoScriptError

from models.claimant import claimant
from worker.broker.deadletters import entry, envelope_problem, log_set_aside
from worker.keys import DEAD_LETTERS, UNACKED_OWNERS

#: Longest one empty-queue wait blocks before the next queue's turn (seconds), unless the
#: `polling_interval` transport option says otherwise (CrashSafeTransport.brpop_timeout).
WAIT_SECONDS = 0.25

FETCH_SCRIPT = files("worker.broker").joinpath("fetch.lua").read_text(encoding="utf-8")
#: The id Redis caches the script under (EVALSHA).
FETCH_SHA = hashlib.sha1(FETCH_SCRIPT.encode(), usedforsecurity=False).hexdigest()

_FETCH = "EVALSHA"
_WAIT = "BLMOVE"

log = logging.getLogger("zapdispatch.broker")


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

    def _remove_from_indices(self, delivery_tag: Any, pipe: Any = None) -> Any:
        """kombu's removal of an unacked entry (ack, reject, restore), and its owner's."""
        return super()._remove_from_indices(delivery_tag, pipe).hdel(UNACKED_OWNERS, delivery_tag)

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        """kombu's restore, except that an entry which cannot be restored (not JSON, not
        `[envelope, exchange, routing_key]`, not a kombu envelope) is moved to the
        dead-letter list in the same transaction instead of raising in the consumer's poll
        (kombu would raise again on every visibility-timeout sweep, or log and drop it)."""
        set_aside: list[tuple[str, str]] = []

        def restore_transaction(pipe: Any) -> None:
            set_aside.clear()
            stored = pipe.hget(self.unacked_key, tag)
            pipe.multi()
            self._remove_from_indices(tag, pipe)
            if not stored:
                return
            raw = bytes_to_str(stored)
            restorable, problem = unacked_record(raw)
            if restorable is not None and not self.channel._lookup(*restorable[1:]):
                # kombu would push it nowhere, silently (no binding: a flushed Redis).
                restorable, problem = None, "unacked entry's exchange has no queue bound"
            if restorable is None:
                pipe.lpush(DEAD_LETTERS, entry(problem, "", "restore", raw, time.time()))
                set_aside.append((problem, raw))
                return
            self.channel._do_restore_message(*restorable, pipe, leftmost)

        with self.channel.conn_or_acquire(client) as conn:
            conn.transaction(restore_transaction, self.unacked_key)
        for problem, raw in set_aside:
            log_set_aside(problem, "", "restore", raw)


def unacked_record(raw: str) -> tuple[tuple[dict[str, Any], str | None, str] | None, str]:
    """`(envelope, exchange, routing_key)` of an `unacked` entry, or None and the reason."""
    try:
        record = loads(raw)
    except ValueError:
        return None, "unacked entry is not JSON"
    if not isinstance(record, list) or len(record) != 3:
        return None, "unacked entry is not [message, exchange, routing_key]"
    payload, exchange, routing_key = record
    if not isinstance(exchange, str | None) or not isinstance(routing_key, str):
        return None, "unacked entry has no exchange or routing key"
    problem = envelope_problem(payload)
    if problem is not None:
        return None, f"unacked entry holds an invalid broker envelope: {problem}"
    return (payload, exchange, routing_key), ""


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
        # kombu 5.6.0 (PR #2346): the transport's blocking timeout, seconds.
        self.brpop_timeout: float = self.connection.brpop_timeout

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

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Send the next fetch, or the next wait of at most `timeout` seconds.

        Carries kombu 5.6.0's fix (PR #2346): kombu 5.5.4 always blocked 1 s whatever the
        `polling_interval` transport option said; a `timeout` left out is now the
        transport's `brpop_timeout`, for our wait and for kombu's own BRPOP alike."""
        if timeout is None:
            timeout = self.brpop_timeout
        if self._no_ack_queues:
            self._sent = None
            super()._brpop_start(timeout)
            return
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        self._in_poll = self.client.connection
        if self._wait_next:
            self._send_wait(queues[0], timeout)
        else:
            self._send_fetch(queues)

    def _send_fetch(self, queues: Sequence[str]) -> None:
        """Ask for the next message of `queues` (priority steps first), recorded as unacked."""
        self._fetch_order = [self._q_for_pri(q, p) for p in self.priority_steps for q in queues]
        prefix = self.global_keyprefix
        keys = [prefix + self.unacked_key, prefix + self.unacked_index_key, prefix + DEAD_LETTERS]
        keys += [prefix + UNACKED_OWNERS, *(prefix + key for key in self._fetch_order)]
        names = [claimant(), *(self._queue_of(key) for key in self._fetch_order)]
        self._sent = _FETCH
        # The first fetch of a connection (and one after a NOSCRIPT) sends the whole script.
        script = ("EVALSHA", FETCH_SHA) if self._script_cached else ("EVAL", FETCH_SCRIPT)
        self._script_cached = True
        self.client.connection.send_command(*script, len(keys), *keys, repr(time.time()), *names)

    def _queue_of(self, key: str) -> str:
        """The queue name of a list key (without kombu's priority suffix)."""
        return key.rsplit(self.sep, 1)[0]

    def _send_wait(self, queue: str, timeout: float) -> None:
        """Block until `queue` holds a message or `timeout` seconds pass, without taking it."""
        key = self.global_keyprefix + queue
        self._sent = _WAIT
        self._queue_cycle.rotate(queue)
        self.client.connection.send_command("BLMOVE", key, key, "RIGHT", "RIGHT", timeout)

    def _brpop_read(self, **options: Any) -> bool:
        sent, self._sent = self._sent, None
        try:
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
        finally:
            # kombu PR #2563: the connection is idle now (reply read, nothing sent yet).
            self._flush_reauth()

    def _flush_reauth(self) -> None:
        """Send a pending streaming re-authentication on the consumer's connection.

        Carries kombu's fix of PR #2563 (after 5.6.2). redis-py (5.3 and later) hands a
        rotated token from a streaming credential provider (Entra ID, IAM) to each pooled
        connection in use, and sends it only when the connection goes back to the pool;
        the consumer's connection never does, so the server would cut it once the first
        credentials expire. The only safe moment to send `AUTH` on it is between a reply
        read and the next command sent, which is here. A connection already down is left
        to the next poll, which reconnects (and authenticates afresh) and registers the
        new socket with the poller; a failed `AUTH` drops the token and the socket, so the
        next poll reconnects with the provider's current credentials. Never raises."""
        if self._in_poll:
            return
        connection: Any = getattr(self.__dict__.get("client"), "connection", None)
        if getattr(connection, "_re_auth_token", None) is None:
            return  # nothing pending (always so before redis-py 5.3)
        if connection._sock is None:
            return
        try:
            connection.re_auth()
        except (*self.connection_errors, self.ResponseError):
            log.warning("re-authentication failed on the broker connection; reconnecting")
            connection._re_auth_token = None
            with contextlib.suppress(*self.connection_errors):
                connection.disconnect()

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

    def _deliver_fetched(self, position: int, raw: bytes, recorded: int, detail: bytes) -> None:
        """Hand a fetched message to its consumer; `position` is 1-based in the fetch order.

        A message the script set aside (`recorded` 0, `detail` the reason) is only logged.
        A recorded message (`detail` its delivery tag)
        whose delivery raises anything but a connection error is set aside and acknowledged:
        the consumer's own guards (worker/broker/consumer.py) normally catch it first."""
        queue = self._queue_of(self._fetch_order[position - 1])
        self._queue_cycle.rotate(queue)
        if not recorded:
            log_set_aside(f"invalid broker envelope: {bytes_to_str(detail)}", queue, "fetch", raw)
            return
        tag = self.recorded_tag = bytes_to_str(detail)
        try:
            self.connection._deliver(loads(raw), queue)
        except (*self.connection_errors, *self.connection.channel_errors):
            raise
        except Exception as exc:  # the message, not the consumer: set it aside
            self._set_aside_recorded(tag, queue, raw, f"delivery failed: {exc!r}")
        finally:
            self.recorded_tag = None

    def _set_aside_recorded(self, tag: str, queue: str, raw: bytes, reason: str) -> None:
        """Move a recorded message to the dead-letter list and drop it from `unacked`."""
        with self.conn_or_acquire() as client:
            pipe = client.pipeline()
            pipe.lpush(DEAD_LETTERS, entry(reason, queue, "fetch", raw, time.time()))
            self.qos._remove_from_indices(tag, pipe)
            pipe.execute()
        if tag in self.qos._delivered:
            virtual.QoS.ack(self.qos, tag)
        log_set_aside(reason, queue, "fetch", raw)


class CrashSafeTransport(kombu_redis.Transport):  # type: ignore[misc]
    """`redis://` and `rediss://` broker URLs, with CrashSafeChannel's fetch."""

    Channel = CrashSafeChannel
    #: Longest one blocking wait of a channel lasts, seconds; the `polling_interval`
    #: transport option sets it (kombu 5.6.0, PR #2346, whose default is 1 s).
    brpop_timeout: float = WAIT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # kombu 5.6.0 (PR #2346): virtual.Transport took polling_interval from the
        # transport options; kombu 5.5.4 then ignored it for the blocking timeout.
        if self.polling_interval is not None:
            self.brpop_timeout = self.polling_interval
