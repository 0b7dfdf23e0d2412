"""The routing snapshot of the instance list: reused briefly, dropped by the store's writes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore

NOW = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def statuses(store: InstanceStore) -> dict[str, InstanceStatus]:
    return {i.name: i.status for i in store.snapshot()}


def test_writes_through_the_store_show_at_once(engine: Engine) -> None:
    store = InstanceStore(make_session_factory(engine), snapshot_seconds=3600)
    store.add("a", "5511900000000", 10, 100, status=InstanceStatus.CONNECTED)
    assert statuses(store) == {"a": InstanceStatus.CONNECTED}
    store.set_status("a", InstanceStatus.DISCONNECTED, "test", NOW)
    assert statuses(store) == {"a": InstanceStatus.DISCONNECTED}
    store.record_send_failure("a", NOW, threshold=1)
    assert store.snapshot()[0].consecutive_failures == 1
    store.record_send_success("a", NOW)
    assert store.snapshot()[0].consecutive_failures == 0


def test_writes_from_elsewhere_are_stale_until_the_snapshot_expires(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    routing = InstanceStore(sessions, snapshot_seconds=3600)
    elsewhere = InstanceStore(sessions)
    elsewhere.add("a", "5511900000000", 10, 100, status=InstanceStatus.CONNECTED)
    assert statuses(routing) == {"a": InstanceStatus.CONNECTED}
    elsewhere.set_status("a", InstanceStatus.BANNED, "test", NOW)
    assert statuses(routing) == {"a": InstanceStatus.CONNECTED}  # stale by design
    assert statuses(InstanceStore(sessions, snapshot_seconds=0)) == {"a": InstanceStatus.BANNED}


def test_a_bumped_routing_version_reloads_within_the_check_interval(engine: Engine) -> None:
    sessions = make_session_factory(engine)
    version = [0]
    routing = InstanceStore(
        sessions, snapshot_seconds=3600, version=lambda: version[0], version_check_seconds=0.0
    )
    elsewhere = InstanceStore(sessions)
    elsewhere.add("a", "5511900000000", 10, 100, status=InstanceStatus.CONNECTED)
    assert statuses(routing) == {"a": InstanceStatus.CONNECTED}
    elsewhere.set_status("a", InstanceStatus.DISCONNECTED, "webhook", NOW)
    assert statuses(routing) == {"a": InstanceStatus.CONNECTED}  # not announced yet
    version[0] += 1
    assert statuses(routing) == {"a": InstanceStatus.DISCONNECTED}


def test_an_unreadable_version_falls_back_to_the_snapshot_expiry(engine: Engine) -> None:
    def broken() -> object:
        raise ConnectionError("redis down")

    routing = InstanceStore(
        make_session_factory(engine),
        snapshot_seconds=3600,
        version=broken,
        version_check_seconds=0.0,
    )
    routing.add("a", "5511900000000", 10, 100, status=InstanceStatus.CONNECTED)
    assert statuses(routing) == {"a": InstanceStatus.CONNECTED}
    assert statuses(routing) == {"a": InstanceStatus.CONNECTED}
