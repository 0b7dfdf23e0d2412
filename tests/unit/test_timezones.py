"""Window ids and ends in DST and non-DST zones (pure functions, no services)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.limiter.timezones import (
    DAY_SECONDS,
    HOUR_SECONDS,
    offset_table,
    utc_offset,
    window_end,
    window_ids,
)

SAO_PAULO = ZoneInfo("America/Sao_Paulo")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Unix seconds of a UTC wall-clock time."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def local(zone: ZoneInfo, year: int, month: int, day: int) -> float:
    """Unix seconds of local midnight starting that day in `zone`."""
    return datetime(year, month, day, tzinfo=zone).timestamp()


def test_sao_paulo_has_one_offset_minus_three_hours() -> None:
    around = utc(2025, 6, 10, 15)
    assert offset_table(SAO_PAULO, around, 2 * DAY_SECONDS) == [
        (around - 2 * DAY_SECONDS, -3 * 3600)
    ]


def test_new_york_table_has_the_exact_transition() -> None:
    spring = utc(2024, 3, 10, 7)  # 02:00 EST -> 03:00 EDT
    table = offset_table(NEW_YORK, spring, DAY_SECONDS)
    assert table == [(spring - DAY_SECONDS, -5 * 3600), (spring, -4 * 3600)]


def test_berlin_table_has_both_2024_transitions_in_a_long_span() -> None:
    table = offset_table(BERLIN, utc(2024, 7, 1), 200 * DAY_SECONDS)
    assert [pair[0] for pair in table[1:]] == [utc(2024, 3, 31, 1), utc(2024, 10, 27, 1)]
    assert [pair[1] for pair in table] == [3600, 7200, 3600]


def test_sao_paulo_day_window_ends_at_local_midnight_0300_utc() -> None:
    now = utc(2025, 6, 10, 15, 30)
    hour_window, day_window = window_ids(SAO_PAULO, now)
    assert day_window == (now - 3 * 3600) // DAY_SECONDS
    assert hour_window == (now - 3 * 3600) // HOUR_SECONDS
    assert window_end(SAO_PAULO, now, DAY_SECONDS) == utc(2025, 6, 11, 3)
    assert window_end(SAO_PAULO, now, HOUR_SECONDS) == utc(2025, 6, 10, 16)
    assert window_ids(SAO_PAULO, utc(2025, 6, 11, 2, 59, 59))[1] == day_window
    assert window_ids(SAO_PAULO, utc(2025, 6, 11, 3))[1] == day_window + 1


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        (NEW_YORK, (2024, 3, 10), 23),
        (NEW_YORK, (2024, 11, 3), 25),
        (BERLIN, (2024, 3, 31), 23),
        (BERLIN, (2024, 10, 27), 25),
        (NEW_YORK, (2024, 7, 4), 24),
    ],
)
def test_day_window_ends_at_the_real_next_midnight(
    zone: ZoneInfo, day: tuple[int, int, int], hours: int
) -> None:
    start = local(zone, *day)
    end = window_end(zone, start + 12 * 3600, DAY_SECONDS)
    assert end - start == hours * 3600
    assert datetime.fromtimestamp(end, zone).hour == 0


def test_spring_forward_hour_ends_at_the_jump() -> None:
    assert window_end(NEW_YORK, utc(2024, 3, 10, 6, 30), HOUR_SECONDS) == utc(2024, 3, 10, 7)


def test_fall_back_repeated_hour_is_one_two_hour_window() -> None:
    first, second = utc(2024, 11, 3, 5, 30), utc(2024, 11, 3, 6, 30)  # 01:30 EDT, 01:30 EST
    assert window_ids(NEW_YORK, first) == window_ids(NEW_YORK, second)
    assert window_end(NEW_YORK, first, HOUR_SECONDS) == utc(2024, 11, 3, 7)


def test_historic_sao_paulo_dst_skipped_and_repeated_midnights() -> None:
    # 2018-11-04 00:00 local did not exist (jump to 01:00); 2019-02-16 23:00 happened twice.
    assert window_end(SAO_PAULO, utc(2018, 11, 3, 15), DAY_SECONDS) == utc(2018, 11, 4, 3)
    assert window_end(SAO_PAULO, utc(2019, 2, 16, 15), DAY_SECONDS) == utc(2019, 2, 17, 3)


ZONES = st.sampled_from(
    [NEW_YORK, BERLIN, SAO_PAULO, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")]
)


@settings(max_examples=150, deadline=None)
@given(zone=ZONES, now=st.floats(utc(2017, 1, 1), utc(2027, 1, 1)), day=st.booleans())
def test_window_end_is_the_first_second_the_window_changes(
    zone: ZoneInfo, now: float, day: bool
) -> None:
    length = DAY_SECONDS if day else HOUR_SECONDS
    position = 1 if day else 0
    end = window_end(zone, now, length)
    assert end > now
    assert window_ids(zone, end)[position] != window_ids(zone, now)[position]
    assert window_ids(zone, max(now, end - 1))[position] == window_ids(zone, now)[position]
    assert end - now <= length + 3600


def test_utc_offset_in_seconds() -> None:
    assert utc_offset(NEW_YORK, utc(2024, 7, 1)) == -4 * 3600
