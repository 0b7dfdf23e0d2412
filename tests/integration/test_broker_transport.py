"""The crash-safe Redis transport (worker/broker) against a real Redis.

The crash tests SIGKILL a real consumer process while Redis's answer to its fetch is still
unread in its socket: the exact window in which stock kombu loses a message.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import types
import uuid
from collections.abc import Iterator
from queue import Empty
from typing import Any

import pytest
import redis
from kombu import Connection, Consumer, Exchange, Producer, Queue

from worker.broker.transport import (
    WAIT_SECONDS,
    CrashSafeTransport,
    RedisTooOld,
    require_blmove,
)
from worker.celery_app import CRASH_SAFE_TRANSPORT, app, broker_transport

QUEUE = Queue("q", Exchange("q"), routing_key="q")
OTHER = Queue("other", Exchange("other"), routing_key="other")

#: A consumer that sends its fetch, waits until Redis's answer is in its socket, and is
#: SIGKILLed before reading it.
KILLED_CONSUMER = """
import os, select, signal, sys, time
from kombu import Connection, Consumer, Exchange, Queue
from worker.broker.transport import CrashSafeTransport, RedisTooOld, require_blmove
url, which, prefix = sys.argv[1:4]
queue = Queue("q", Exchange("q"), routing_key="q")
transport = CrashSafeTransport if which == "crash-safe" else None
options = {"global_keyprefix": prefix} if prefix else {}
with Connection(url, transport=transport, transport_options=options) as conn:
    channel = conn.channel()
    Consumer(channel, [queue], callbacks=[lambda body, message: None], accept=["json"]).consume()
    conn.transport.cycle._register_BRPOP(channel)
    select.select([channel.client.connection._sock], [], [], 10)
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture
def broker(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The test's flushed Redis database, as the broker."""
    yield redis_client


def publish(url: str, body: dict[str, Any], queue: Queue = QUEUE, **options: Any) -> None:
    """Publish with stock kombu, as any producer of ours or not would."""
    with Connection(url, transport_options=options.pop("transport_options", {})) as conn:
        Producer(conn.channel()).publish(
            body,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            serializer="json",
            **options,
        )


def kill_consumer_mid_fetch(url: str, which: str, prefix: str = "") -> None:
    """Run KILLED_CONSUMER and check it really died of SIGKILL."""
    command = [sys.executable, "-c", KILLED_CONSUMER, url, which, prefix]
    done = subprocess.run(command, check=False, timeout=30, capture_output=True)
    assert done.returncode == -9, done.stderr.decode()


def counts(client: redis.Redis, prefix: str = "") -> tuple[int, int, int]:
    """(queued, unacked, indexed) for QUEUE."""
    return (
        int(client.llen(f"{prefix}q")),
        int(client.hlen(f"{prefix}unacked")),
        int(client.zcard(f"{prefix}unacked_index")),
    )


def consume(url: str, queues: list[Queue], no_ack: bool = False, **options: Any) -> Any:
    """Open a crash-safe consumer; returns (connection, received bodies, messages)."""
    conn = Connection(url, transport=CrashSafeTransport, transport_options=options)
    received: list[Any] = []
    messages: list[Any] = []

    def on_message(body: Any, message: Any) -> None:
        received.append(body)
        messages.append(message)

    Consumer(
        conn.default_channel, queues, callbacks=[on_message], accept=["json"], no_ack=no_ack
    ).consume()
    return conn, received, messages


def drain_until(conn: Connection, received: list[Any], count: int, seconds: float = 10) -> None:
    """Drain events until `count` bodies arrived; fails after `seconds` of no progress."""
    for _ in range(int(seconds * 4)):
        if len(received) >= count:
            return
        with contextlib.suppress(TimeoutError):
            conn.drain_events(timeout=0.25)
    assert len(received) >= count, received


@pytest.mark.parametrize("prefix", ["", "zdtest:"])
def test_a_consumer_killed_with_the_answer_unread_leaves_the_message_restorable(
    redis_url: str, broker: redis.Redis, prefix: str
) -> None:
    options = {"global_keyprefix": prefix} if prefix else {}
    publish(redis_url, {"n": 1}, transport_options=options)
    kill_consumer_mid_fetch(redis_url, "crash-safe", prefix)
    assert counts(broker, prefix) == (0, 1, 1)
    # What a surviving worker does once the visibility timeout passed (0 s here).
    conn, received, messages = consume(redis_url, [QUEUE], visibility_timeout=0, **options)
    with conn:
        conn.default_channel.qos.restore_visible()
        drain_until(conn, received, 1)
        assert received == [{"n": 1}] and messages[0].delivery_info["redelivered"]
        messages[0].ack()
    assert counts(broker, prefix) == (0, 0, 0)


def test_stock_kombu_still_loses_that_message(redis_url: str, broker: redis.Redis) -> None:
    """Canary: the day this fails, kombu closed the window and worker/broker can go."""
    publish(redis_url, {"n": 1})
    kill_consumer_mid_fetch(redis_url, "stock")
    assert counts(broker) == (0, 0, 0)


def test_fetched_messages_are_unacked_until_acked(redis_url: str, broker: redis.Redis) -> None:
    for n in range(3):
        publish(redis_url, {"n": n})
    conn, received, messages = consume(redis_url, [QUEUE])
    with conn:
        drain_until(conn, received, 3)
        assert received == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert counts(broker) == (0, 3, 3)
        for message in messages:
            message.ack()
    assert counts(broker) == (0, 0, 0)


def test_an_idle_consumer_wakes_for_any_of_its_queues_in_order(
    redis_url: str, broker: redis.Redis
) -> None:
    conn, received, messages = consume(redis_url, [QUEUE, OTHER])
    with conn:
        with pytest.raises(TimeoutError):
            conn.drain_events(timeout=1)  # empty: the consumer is waiting now
        later = threading.Thread(target=publish_batch, args=(redis_url,))
        later.start()
        drain_until(conn, received, 5)
        later.join()
        assert [b for b in received if "n" in b] == [{"n": n} for n in range(4)]
        assert {"other": 1} in received
        for message in messages:
            message.ack()
    assert counts(broker) == (0, 0, 0)


def publish_batch(url: str) -> None:
    """Four messages on QUEUE, then one on OTHER (with a priority: its own Redis list)."""
    for n in range(4):
        publish(url, {"n": n})
    publish(url, {"other": 1}, queue=OTHER, priority=6)


def test_a_no_ack_consumer_keeps_kombu_fetch(redis_url: str, broker: redis.Redis) -> None:
    publish(redis_url, {"n": 1})
    conn, received, _ = consume(redis_url, [QUEUE], no_ack=True)
    with conn:
        drain_until(conn, received, 1)
    assert received == [{"n": 1}]
    assert counts(broker) == (0, 0, 0), "nothing would ever acknowledge an unacked entry"


def test_closing_with_a_fetch_in_flight_puts_the_message_back(
    redis_url: str, broker: redis.Redis
) -> None:
    """A warm shutdown: the answer is read on close and its message restored at once."""
    conn, received, _ = consume(redis_url, [QUEUE])
    channel = conn.default_channel
    publish(redis_url, {"n": 1})
    conn.transport.cycle._register_BRPOP(channel)
    channel.close()
    conn.release()
    assert received == [{"n": 1}]
    assert counts(broker) == (1, 0, 0)


def test_the_app_uses_the_crash_safe_transport() -> None:
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, CrashSafeTransport)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", {"broker_transport": CRASH_SAFE_TRANSPORT}),
        (
            "rediss://cache.example:6380/0",
            {"broker_transport": CRASH_SAFE_TRANSPORT, "broker_use_ssl": {"ssl_cert_reqs": 2}},
        ),
        ("unix:///run/redis.sock", {}),
    ],
)
def test_broker_transport_by_scheme(url: str, expected: dict[str, object]) -> None:
    assert broker_transport(url) == expected


def test_a_flushed_script_cache_costs_one_empty_poll(redis_url: str, broker: redis.Redis) -> None:
    conn, received, messages = consume(redis_url, [QUEUE])
    with conn:
        publish(redis_url, {"n": 1})
        drain_until(conn, received, 1)
        broker.script_flush()
        publish(redis_url, {"n": 2})
        drain_until(conn, received, 2)
        for message in messages:
            message.ack()
    assert received == [{"n": 1}, {"n": 2}]
    assert counts(broker) == (0, 0, 0)


@pytest.mark.parametrize(
    ("version", "accepted"),
    [("7.0.15", True), ("6.2.0", True), ("6.0.16", False), ("5.0.7", False), ("", False)],
)
def test_redis_older_than_6_2_is_refused_with_a_clear_error(version: str, accepted: bool) -> None:
    if accepted:
        require_blmove({"redis_version": version})
    else:
        with pytest.raises(RedisTooOld, match=r"Redis 6\.2 or later"):
            require_blmove({"redis_version": version})


@pytest.mark.parametrize(
    ("options", "seconds"), [({}, WAIT_SECONDS), ({"polling_interval": 0.5}, 0.5)]
)
@pytest.mark.parametrize(("no_ack", "command"), [(False, "BLMOVE"), (True, "BRPOP")])
def test_an_idle_wait_blocks_for_the_polling_interval(
    redis_url: str,
    broker: redis.Redis,
    options: dict[str, float],
    seconds: float,
    no_ack: bool,
    command: str,
) -> None:
    """kombu 5.6.0's fix (PR #2346): `polling_interval` is each blocking wait's timeout;
    kombu 5.5.4 waited 1 s (BRPOP) and the crash-safe wait WAIT_SECONDS, whatever it said."""
    conn, _, _ = consume(redis_url, [QUEUE], no_ack=no_ack, **options)
    db = int(redis_url.rsplit("/", 1)[1])
    with conn, broker.monitor() as monitor:
        channel = conn.default_channel
        if not no_ack:  # the crash-safe consumer fetches first, and waits once that is empty
            conn.transport.cycle._register_BRPOP(channel)
            with pytest.raises(Empty):
                channel._brpop_read()
        conn.transport.cycle._register_BRPOP(channel)
        while True:
            seen = monitor.next_command()
            if seen["db"] == db and seen["command"].startswith(f"{command} q"):
                break
    assert float(seen["command"].split()[-1]) == seconds


class Token:
    """A streaming credential provider's token, as redis-py 5.3 and later hand it over."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    def try_get(self, key: str) -> str:
        return self.user if key == "oid" else ""

    def get_value(self) -> str:
        return self.password


def rotate_token(connection: Any, token: Token) -> None:
    """What redis-py 5.3+ does to a connection in use when its provider rotates a token
    (`set_re_auth_token`; `re_auth` sends it). redis-py 5.2 has neither: they are added
    here as 5.3 defines them, and Redis does the authentication for real."""

    def re_auth(self: Any) -> None:
        if self._re_auth_token is not None:
            token = self._re_auth_token
            self.send_command("AUTH", token.try_get("oid"), token.get_value())
            self.read_response()
            self._re_auth_token = None

    connection._re_auth_token = token
    connection.re_auth = types.MethodType(re_auth, connection)


def consumer_connection(conn: Connection) -> Any:
    """The consumer's own Redis connection, registered with the poller (first fetch sent)."""
    channel = conn.default_channel
    conn.transport.cycle._register_BRPOP(channel)
    return channel.client.connection


def server_side(broker: redis.Redis, connection: Any) -> dict[str, str]:
    """Redis's CLIENT LIST entry for `connection`."""
    port = connection._sock.getsockname()[1]
    [entry] = [c for c in broker.client_list() if c["addr"].endswith(f":{port}")]
    return dict(entry)


@pytest.fixture
def acl_user(broker: redis.Redis) -> Iterator[tuple[str, str]]:
    """A Redis user allowed everything, removed after the test: (name, password)."""
    name, password = f"zdtest-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    broker.execute_command("ACL", "SETUSER", name, "on", f">{password}", "~*", "&*", "+@all")
    yield name, password
    broker.execute_command("ACL", "DELUSER", name)


def test_a_rotated_token_is_sent_on_the_consumer_connection_after_a_read(
    redis_url: str, broker: redis.Redis, acl_user: tuple[str, str]
) -> None:
    """kombu's fix of PR #2563: the consumer's connection never returns to the pool, so a
    rotated token reaches it only if the transport sends it between two commands."""
    conn, received, messages = consume(redis_url, [QUEUE])
    with conn:
        connection = consumer_connection(conn)
        rotate_token(connection, Token(*acl_user))
        publish(redis_url, {"n": 1})
        drain_until(conn, received, 1)
        messages[0].ack()
        assert connection._re_auth_token is None
        assert server_side(broker, connection)["user"] == acl_user[0]


def test_a_refused_token_drops_the_connection_and_consuming_goes_on(
    redis_url: str, broker: redis.Redis, acl_user: tuple[str, str]
) -> None:
    conn, received, messages = consume(redis_url, [QUEUE])
    with conn:
        connection = consumer_connection(conn)
        address = server_side(broker, connection)["addr"]
        rotate_token(connection, Token(acl_user[0], "not-the-password"))
        publish(redis_url, {"n": 1})
        drain_until(conn, received, 1)
        assert connection._re_auth_token is None
        assert address not in [c["addr"] for c in broker.client_list()], "not dropped"
        publish(redis_url, {"n": 2})
        drain_until(conn, received, 2)  # the next poll reconnected
        for message in messages:
            message.ack()
    assert received == [{"n": 1}, {"n": 2}]
    assert counts(broker) == (0, 0, 0)
