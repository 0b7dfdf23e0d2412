"""The dashboard rules on plain values: emoji, overall status, summary, hours."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from models.enums import InstanceStatus, status_emoji
from models.views import CircuitState, InstanceView
from worker.stats import (
    InstanceRow,
    capacity_used_pct,
    hourly_series,
    is_available,
    local_hour_starts,
    message_counts,
    overall_status,
    summarize,
)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")


def view(name: str, status: InstanceStatus, daily: int = 100, active: bool = True) -> InstanceView:
    return InstanceView(name, "5511900000000", status, 10, daily, active)


def row(
    v: InstanceView,
    day: int = 0,
    has_capacity: bool = True,
    circuit: CircuitState = CircuitState.CLOSED,
) -> InstanceRow:
    return InstanceRow(v, 0, day, 0.0, has_capacity, circuit)


@pytest.mark.parametrize(
    ("status", "emoji"),
    [
        ("connected", "🟢"),
        ("disconnected", "🔴"),
        ("banned", "⛔"),
        ("connecting", "🟡"),
        ("weird", "❓"),
    ],
)
def test_status_emoji(status: str, emoji: str) -> None:
    assert status_emoji(status) == emoji


@pytest.mark.parametrize(
    ("total", "online", "used", "expected"),
    [
        (3, 0, 0.0, "critical"),
        (0, 0, 0.0, "critical"),
        (5, 2, 0.0, "degraded"),
        (4, 2, 0.0, "healthy"),  # exactly half is not "fewer than half"
        (4, 2, 80.0, "healthy"),
        (4, 2, 80.1, "warning"),
        (3, 3, 95.0, "warning"),
        (3, 1, 95.0, "degraded"),  # degraded wins over warning
    ],
)
def test_overall_status_follows_the_seed_rules_in_order(
    total: int, online: int, used: float, expected: str
) -> None:
    assert overall_status(total, online, used) == expected


def test_capacity_used_is_zero_without_capacity() -> None:
    assert capacity_used_pct(10, 0) == 0.0
    assert capacity_used_pct(1, 3) == 33.3


def test_summary_counts_capacity_of_connected_instances_only() -> None:
    rows = [
        row(view("a", InstanceStatus.CONNECTED, 100), day=10),
        row(view("b", InstanceStatus.DISCONNECTED, 200), day=5),
        row(view("c", InstanceStatus.BANNED, 300), day=1),
        row(view("d", InstanceStatus.CONNECTING, 400)),
    ]
    summary = summarize(rows)
    assert summary.to_json() == {
        "total_instances": 4,
        "online": 1,
        "offline": 2,
        "banned": 1,
        "capacity_day": 100,
        "sent_today": 16,
        "capacity_used_pct": 16.0,
    }


def test_connected_instance_with_an_open_breaker_is_not_counted_online() -> None:
    rows = [
        row(view("a", InstanceStatus.CONNECTED, 100)),
        row(view("b", InstanceStatus.CONNECTED, 100), circuit=CircuitState.OPEN),
        row(view("c", InstanceStatus.CONNECTED, 100), circuit=CircuitState.HALF_OPEN),
        row(view("d", InstanceStatus.CONNECTED, 100, active=False)),
    ]
    summary = summarize(rows)
    assert (summary.online, summary.offline, summary.capacity_day) == (2, 2, 200)


def test_available_needs_active_connected_closed_breaker_and_room() -> None:
    up = view("a", InstanceStatus.CONNECTED)
    assert is_available(up, True, CircuitState.CLOSED)
    assert is_available(up, True, CircuitState.HALF_OPEN)
    assert not is_available(up, True, CircuitState.OPEN)
    assert not is_available(up, False, CircuitState.CLOSED)
    assert not is_available(
        view("a", InstanceStatus.CONNECTED, active=False), True, CircuitState.CLOSED
    )
    assert not is_available(view("a", InstanceStatus.CONNECTING), True, CircuitState.CLOSED)


def test_row_json_uses_the_interface_keys() -> None:
    body = row(view("a", InstanceStatus.CONNECTED), day=7).to_json()
    assert {
        "name",
        "phone",
        "status",
        "status_emoji",
        "messages_hour",
        "capacity_hour",
        "messages_day",
        "capacity_day",
        "load_pct",
        "available",
        "last_message_at",
    } <= set(body)


def test_hour_starts_are_local_and_end_in_the_current_hour() -> None:
    now = datetime(2026, 11, 23, 13, 59, tzinfo=UTC)  # 10:59 in São Paulo
    starts = local_hour_starts(now, SAO_PAULO)
    assert len(starts) == 24
    assert starts[-1].isoformat() == "2026-11-23T10:00:00-03:00"
    assert starts[0].isoformat() == "2026-11-22T11:00:00-03:00"


def test_hour_starts_in_a_half_hour_zone() -> None:
    starts = local_hour_starts(
        datetime(2026, 1, 1, 0, 10, tzinfo=UTC), ZoneInfo("Asia/Kolkata"), hours=2
    )
    assert [s.isoformat() for s in starts] == [
        "2026-01-01T04:00:00+05:30",
        "2026-01-01T05:00:00+05:30",
    ]


def test_hourly_series_is_zero_filled() -> None:
    starts = local_hour_starts(datetime(2026, 11, 23, 13, 0, tzinfo=UTC), SAO_PAULO, hours=3)
    series = hourly_series(starts, {datetime(2026, 11, 23, 9, 0): 4})
    assert series == [
        {"hour": "2026-11-23T08:00:00-03:00", "sent": 0},
        {"hour": "2026-11-23T09:00:00-03:00", "sent": 4},
        {"hour": "2026-11-23T10:00:00-03:00", "sent": 0},
    ]


def test_message_counts_cover_every_state() -> None:
    assert message_counts({"sent": 2}) == {
        "queued": 0,
        "waiting": 0,
        "sending": 0,
        "sent": 2,
        "failed": 0,
        "expired": 0,
        "cancelled": 0,
    }
