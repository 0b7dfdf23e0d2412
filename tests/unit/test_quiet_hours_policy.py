"""Quiet hours in the recipient's local time, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from worker.policy.quiet_hours import quiet_until, recipient_zone

SP = ZoneInfo("America/Sao_Paulo")
NIGHT = (22 * 60, 8 * 60)  # 22:00-08:00, crosses midnight
LUNCH = (12 * 60, 14 * 60)


def at(text: str, zone: ZoneInfo = SP) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.mark.parametrize(
    ("phone", "zone"),
    [
        ("5511999998888", "America/Sao_Paulo"),
        ("5592999998888", "America/Manaus"),  # Brazil spans four zones
        ("5568999998888", "America/Rio_Branco"),
        ("14155550100", "America/Los_Angeles"),
        ("351912345678", "America/Sao_Paulo"),  # Portugal maps to two zones: TIMEZONE
        ("999", "America/Sao_Paulo"),  # unparseable: TIMEZONE
    ],
)
def test_the_recipient_zone_comes_from_the_number(phone: str, zone: str) -> None:
    assert recipient_zone(phone, SP).key == zone


@pytest.mark.parametrize(
    ("local", "ends"),
    [
        ("2026-11-23 23:00", "2026-11-24 08:00"),  # evening part: ends the next morning
        ("2026-11-24 03:30", "2026-11-24 08:00"),  # after midnight: ends the same morning
        ("2026-11-23 22:00", "2026-11-24 08:00"),  # the first minute is inside
    ],
)
def test_inside_a_window_that_crosses_midnight(local: str, ends: str) -> None:
    assert quiet_until(at(local), SP, NIGHT) == at(ends)


@pytest.mark.parametrize("local", ["2026-11-23 08:00", "2026-11-23 12:00", "2026-11-23 21:59"])
def test_outside_the_window_nothing_waits(local: str) -> None:
    assert quiet_until(at(local), SP, NIGHT) is None


def test_a_window_within_one_day() -> None:
    assert quiet_until(at("2026-11-23 12:30"), SP, LUNCH) == at("2026-11-23 14:00")
    assert quiet_until(at("2026-11-23 14:00"), SP, LUNCH) is None
    assert quiet_until(at("2026-11-23 11:59"), SP, LUNCH) is None


def test_the_same_instant_is_night_in_one_zone_and_day_in_another() -> None:
    now = datetime(2026, 11, 24, 7, 30, tzinfo=UTC).timestamp()  # 04:30 São Paulo, 23:30 LA
    assert quiet_until(now, SP, NIGHT) == at("2026-11-24 08:00")
    la = ZoneInfo("America/Los_Angeles")
    assert quiet_until(now, la, NIGHT) == at("2026-11-24 08:00", la)
    assert quiet_until(now, ZoneInfo("Europe/Berlin"), NIGHT) is None  # 08:30 in Berlin
