"""The routing snapshot of the instance list: reused briefly, dropped by the store's writes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from models.views import CircuitState
from worker.breaker import is_online

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


def test_routable_sql_agrees_with_is_online_before_the_breaker(engine: Engine) -> None:
    """`InstanceStore.routable` filters in SQL what `worker.breaker.is_online` decides in
    Python (the breaker left to the caller): the two agree on every status and active flag."""
    store = InstanceStore(make_session_factory(engine))
    for n, status in enumerate(InstanceStatus):
        for active in (True, False):
            name = f"{status.value}-{active}"
            store.add(name, f"55119000000{n}{int(active)}", 10, 100, status=status)
            store.update(name, active=active)
    online = {v.name for v in store.all() if is_online(v, CircuitState.CLOSED)}
    assert {v.name for v in store.routable()} == online == {"connected-True"}
