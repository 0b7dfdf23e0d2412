"""Alert conditions and transitions on plain values (no services)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from models.enums import (
    POOL_SUBJECT,
    AlertKind,
    AlertSeverity,
    Channel,
    InstanceStatus,
    NotificationEvent,
)
from models.receipt_store import DeliveryCounts
from models.views import AlertText, AlertView, InstanceView
from worker.breaker import BreakerPolicy, is_online
from worker.monitor.rules import (
    MonitorPolicy,
    Open,
    Remind,
    Resolve,
    Snapshot,
    channels_for,
    conditions,
    plan,
    reminder_due,
    urgent,
)

NOW = 1_795_914_000.0
BREAKER = BreakerPolicy(failure_threshold=5, cooldown_seconds=120)
POLICY = MonitorPolicy(capacity_alert_pct=80, breaker=BREAKER, repeat_seconds=3600)


def inst(
    name: str, status: InstanceStatus = InstanceStatus.CONNECTED, **kw: object
) -> InstanceView:
    fields: dict[str, object] = {
        "name": name,
        "phone": "5511999998888",
        "status": status,
        "hourly_cap": 10,
        "daily_cap": 100,
        "active": True,
    }
    fields.update(kw)
    return InstanceView(**fields)  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def alert(kind: AlertKind, subject: str, last: float, pending: int = 0) -> AlertView:
    return AlertView(
        id=1,
        kind=kind,
        subject=subject,
        severity=AlertSeverity.ERROR,
        title="t",
        message="m",
        opened_at=at(last),
        last_notified_at=at(last),
        reminders=0,
        resolved_at=None,
        pending=pending,
    )


def kinds(snapshot: Snapshot) -> set[tuple[AlertKind, str]]:
    return {c.key for c in conditions(snapshot, POLICY)}


def test_healthy_pool_has_no_conditions() -> None:
    assert kinds(Snapshot(NOW, [inst("a"), inst("b")], {"a": 80.0})) == set()


def test_offline_and_banned_and_all_offline() -> None:
    snap = Snapshot(
        NOW,
        [
            inst("a", InstanceStatus.DISCONNECTED),
            inst("b", InstanceStatus.BANNED),
            inst("c", InstanceStatus.CONNECTING),
        ],
    )
    assert kinds(snap) == {
        (AlertKind.INSTANCE_OFFLINE, "a"),
        (AlertKind.INSTANCE_BANNED, "b"),
        (AlertKind.INSTANCE_OFFLINE, "c"),
        (AlertKind.ALL_OFFLINE, POOL_SUBJECT),
    }


def test_capacity_strictly_above_threshold() -> None:
    assert kinds(Snapshot(NOW, [inst("a"), inst("b")], {"a": 80.1, "b": 80.0})) == {
        (AlertKind.CAPACITY_HIGH, "a")
    }


def test_open_breaker_counts_offline_and_alerts() -> None:
    failing = inst("a", consecutive_failures=5, circuit_opened_at=at(NOW - 10))
    assert not is_online(failing, BREAKER.circuit(failing, NOW))
    assert kinds(Snapshot(NOW, [failing])) == {
        (AlertKind.CIRCUIT_OPEN, "a"),
        (AlertKind.ALL_OFFLINE, POOL_SUBJECT),
    }
    # Half-open after the cooldown: may take a trial send, so online; the alert stays.
    assert is_online(failing, BREAKER.circuit(failing, NOW + 121))
    assert kinds(Snapshot(NOW + 121, [failing])) == {(AlertKind.CIRCUIT_OPEN, "a")}


def test_four_failures_do_not_alert() -> None:
    assert kinds(Snapshot(NOW, [inst("a", consecutive_failures=4)])) == set()


def test_inactive_instances_raise_nothing_but_count_for_all_offline() -> None:
    snap = Snapshot(NOW, [inst("a", InstanceStatus.BANNED, active=False)])
    assert kinds(snap) == {(AlertKind.ALL_OFFLINE, POOL_SUBJECT)}
    assert kinds(Snapshot(NOW, [])) == set()


def test_ban_text_masks_phone_and_counts_migration() -> None:
    snap = Snapshot(NOW, [inst("a", InstanceStatus.BANNED)], migrated={"a": 7})
    text = conditions(snap, POLICY)[0].text.body
    assert "5511999998888" not in text and "5511*******88" in text and "7 contacts" in text


def test_plan_opens_then_stays_quiet_then_reminds_then_resolves() -> None:
    snap = Snapshot(NOW, [inst("a", InstanceStatus.DISCONNECTED), inst("b")])
    holding = conditions(snap, POLICY)
    first = plan(holding, [], snap, POLICY)
    assert [type(s) for s in first] == [Open]
    open_alert = alert(AlertKind.INSTANCE_OFFLINE, "a", NOW)
    later = replace(snap, now=NOW + 3599)
    assert plan(holding, [open_alert], later, POLICY) == []
    due = replace(snap, now=NOW + 3600)
    assert [type(s) for s in plan(holding, [open_alert], due, POLICY)] == [Remind]
    cleared = Snapshot(NOW + 3700, [inst("a"), inst("b")])
    steps = plan([], [open_alert], cleared, POLICY)
    assert [type(s) for s in steps] == [Resolve]
    assert isinstance(steps[0], Resolve) and "🟢 connected" in steps[0].text.body


def test_no_reminder_while_a_notification_is_pending() -> None:
    assert not reminder_due(
        alert(AlertKind.INSTANCE_OFFLINE, "a", NOW, pending=1), NOW + 7200, 3600
    )
    assert reminder_due(alert(AlertKind.INSTANCE_OFFLINE, "a", NOW), NOW + 7200, 3600)


def test_channels() -> None:
    assert channels_for(
        AlertKind.INSTANCE_BANNED, AlertSeverity.CRITICAL, NotificationEvent.OPENED
    ) == (Channel.SLACK, Channel.EMAIL)
    assert channels_for(
        AlertKind.INSTANCE_BANNED, AlertSeverity.CRITICAL, NotificationEvent.REMINDER
    ) == (Channel.SLACK,)
    assert channels_for(AlertKind.CAPACITY_HIGH, AlertSeverity.INFO, NotificationEvent.OPENED) == ()
    assert urgent(AlertKind.ALL_OFFLINE, NotificationEvent.OPENED)
    assert not urgent(AlertKind.ALL_OFFLINE, NotificationEvent.RESOLVED)


def test_resolved_text_for_removed_and_deactivated() -> None:
    gone = plan([], [alert(AlertKind.INSTANCE_OFFLINE, "x", NOW)], Snapshot(NOW, []), POLICY)
    assert isinstance(gone[0], Resolve) and "removed" in gone[0].text.body
    off = Snapshot(NOW, [inst("x", active=False)])
    steps = plan([], [alert(AlertKind.INSTANCE_OFFLINE, "x", NOW)], off, POLICY)
    assert isinstance(steps[0], Resolve) and "deactivated" in steps[0].text.body
    assert AlertText("a", "b").title == "a"


# --- accepting but not delivering -----------------------------------------------------------


def delivery_snapshot(**counts: tuple[int, int]) -> Snapshot:
    views = [inst(name) for name in counts]
    return Snapshot(
        NOW,
        views,
        deliveries={n: DeliveryCounts(sent, done, done) for n, (sent, done) in counts.items()},
    )


def test_not_delivering_when_others_deliver() -> None:
    snapshot = delivery_snapshot(a=(5, 0), b=(5, 4))
    assert kinds(snapshot) == {(AlertKind.NOT_DELIVERING, "a")}
    found = conditions(snapshot, POLICY)[0]
    assert found.severity is AlertSeverity.ERROR and "5 sends" in found.text.body


def test_not_delivering_needs_enough_sends_and_another_delivering_number() -> None:
    assert kinds(delivery_snapshot(a=(4, 0), b=(5, 4))) == set()  # too few sends to judge
    assert kinds(delivery_snapshot(a=(5, 0), b=(5, 0))) == set()  # no receipts anywhere
    assert kinds(delivery_snapshot(a=(5, 1), b=(5, 4))) == set()  # one delivered is enough


def test_not_delivering_resolves_with_its_own_words() -> None:
    snapshot = delivery_snapshot(a=(5, 1), b=(5, 4))
    open_alert = alert(AlertKind.NOT_DELIVERING, "a", NOW - 60)
    steps = plan(conditions(snapshot, POLICY), [open_alert], snapshot, POLICY)
    assert len(steps) == 1 and isinstance(steps[0], Resolve)
    assert "delivery receipts again" in steps[0].text.body
