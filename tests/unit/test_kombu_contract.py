"""worker/broker overrides private methods of kombu's Redis transport, and calls others.

kombu is pinned (pyproject.toml); this test fails loudly when an upgrade changes any kombu
method the transport overrides or relies on, so that the override is re-read against the
new code before the pin moves. To move it: read each changed method, port what changed
into worker/broker/transport.py, then update the fingerprints below.

The transport already carries two fixes kombu made after 5.5.4 to the methods it overrides
(each marked there): the blocking timeout from `polling_interval` (kombu 5.6.0, PR #2346)
and the re-authentication flush after a read (kombu PR #2563). A kombu that has them makes
the carried copy redundant, not wrong: keep the override's version, drop the duplicate.
"""

from __future__ import annotations

import hashlib
import inspect

import kombu
import pytest
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from worker.broker.transport import CrashSafeChannel, CrashSafeQoS, CrashSafeTransport

PINNED = "5.5.4"

#: (class, method) → the first 16 hex digits of sha256 of its source in kombu PINNED.
FINGERPRINTS = {
    (kombu_redis.Channel, "_brpop_start"): "1d125c1e720ad5a6",
    (kombu_redis.Channel, "_brpop_read"): "9a9f7f5a6ad96f48",
    (kombu_redis.Channel, "basic_consume"): "34e0da85e689ff98",
    (kombu_redis.Channel, "basic_cancel"): "d2e3a03a48d2a52a",
    (kombu_redis.Channel, "_do_restore_message"): "fccdf81a0220c560",
    (kombu_redis.Channel, "_q_for_pri"): "f3997660680dd00f",
    (kombu_redis.Channel, "conn_or_acquire"): "25883caca6c4121e",
    (kombu_redis.QoS, "append"): "35c655f6ecc62fe6",
    (kombu_redis.QoS, "restore_by_tag"): "58e161d81b6fe18d",
    (kombu_redis.QoS, "_remove_from_indices"): "980a109d54ad9136",
    (virtual.QoS, "append"): "b388f0cd6485c28a",
    (virtual.Channel, "_lookup"): "82b0e60149b5e172",
    (virtual.Transport, "_deliver"): "799e242f3ec53863",
    (kombu_redis.MultiChannelPoller, "on_readable"): "2e3460efd00f2d8b",
    # CrashSafeTransport.__init__ reads the polling_interval these set (kombu PR #2346).
    (kombu_redis.Transport, "__init__"): "38db7d320154eab7",
    (virtual.Transport, "__init__"): "15c3eeb81a7640c4",
}


def test_kombu_is_the_pinned_version() -> None:
    assert kombu.__version__ == PINNED


@pytest.mark.parametrize(
    ("owner", "name"), list(FINGERPRINTS), ids=[f"{o.__name__}.{n}" for o, n in FINGERPRINTS]
)
def test_kombu_methods_the_transport_overrides_are_unchanged(owner: type, name: str) -> None:
    source = inspect.getsource(getattr(owner, name))
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert digest == FINGERPRINTS[(owner, name)], (
        f"kombu changed {owner.__module__}.{owner.__name__}.{name}: re-read "
        "worker/broker/transport.py against it before moving the pin"
    )


def test_the_overrides_are_still_overrides() -> None:
    for cls, names in (
        (CrashSafeChannel, ("_brpop_start", "_brpop_read", "basic_consume", "basic_cancel")),
        (CrashSafeQoS, ("append", "restore_by_tag", "_remove_from_indices")),
        (CrashSafeTransport, ("__init__",)),
    ):
        for name in names:
            assert name in vars(cls), name
            assert any(name in vars(base) for base in cls.__mro__[1:]), name
