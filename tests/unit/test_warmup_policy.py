"""The warm-up ramp and the policy variables' parsers, on plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from config import Settings
from config.policy_values import parse_quiet_hours, parse_typing_delay, parse_warmup_schedule
from worker.policy.warmup import EffectiveCaps, effective_caps, warmup_day

SP = ZoneInfo("America/Sao_Paulo")
#: 2026-11-23 10:00 in São Paulo.
T0 = 1_795_438_800.0
DAY = 86_400.0
ADDED = datetime.fromtimestamp(T0, tz=UTC)
RAMP = (20, 30, 50)


def test_schedule_parses_and_refuses_junk() -> None:
    assert parse_warmup_schedule("") == ()
    assert parse_warmup_schedule(" 20, 30,50 ") == (20, 30, 50)
    for bad in ("20,,30", "20,x", "0,10", "-5", "1.5"):
        with pytest.raises(ValueError, match="positive integers"):
            parse_warmup_schedule(bad)


def test_settings_refuse_a_bad_schedule_naming_the_variable() -> None:
    with pytest.raises(ValidationError, match="warmup_schedule"):
        Settings(warmup_schedule="20,abc", _env_file=None)  # type: ignore[call-arg]
    assert Settings(warmup_schedule="5,10", _env_file=None).warmup_ramp == (5, 10)  # type: ignore[call-arg]


def test_day_one_is_the_local_day_it_was_added() -> None:
    assert warmup_day(ADDED, T0, SP) == 1
    assert warmup_day(ADDED, T0 + 13 * 3600, SP) == 1  # 23:00 the same local day
    assert warmup_day(ADDED, T0 + 14 * 3600, SP) == 2  # 00:00 the next local day
    assert warmup_day(ADDED, T0 - DAY, SP) == 1  # a clock behind the start: still day 1


@pytest.mark.parametrize(
    ("days_later", "expected"),
    [
        (0, EffectiveCaps(2, 20, 1)),  # 60 × 20/500 = 2.4 → 2
        (1, EffectiveCaps(3, 30, 2)),
        (2, EffectiveCaps(6, 50, 3)),
        (3, EffectiveCaps(60, 500, None)),  # the schedule is over: its own caps
    ],
)
def test_effective_caps_follow_the_ramp(days_later: int, expected: EffectiveCaps) -> None:
    assert effective_caps(60, 500, ADDED, T0 + days_later * DAY, RAMP, SP) == expected


def test_hourly_cap_never_drops_below_one_and_own_caps_below_the_ramp_win() -> None:
    assert effective_caps(5, 500, ADDED, T0, (20,), SP) == EffectiveCaps(1, 20, 1)
    assert effective_caps(10, 15, ADDED, T0, (20,), SP) == EffectiveCaps(10, 15, 1)
    assert effective_caps(10, 100, ADDED, T0, (), SP) == EffectiveCaps(10, 100, None)


def test_quiet_hours_and_typing_delay_parse() -> None:
    assert parse_quiet_hours("") is None
    assert parse_quiet_hours("22:00-08:00") == (1320, 480)
    assert parse_quiet_hours("13:30-14:00") == (810, 840)
    for bad in ("22-08", "24:00-08:00", "22:00-22:00", "22:00"):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)
    assert parse_typing_delay("0-0") == (0, 0)
    assert parse_typing_delay("1000-3000") == (1000, 3000)
    for bad in ("3000-1000", "abc", "100", "-5-10"):
        with pytest.raises(ValueError):
            parse_typing_delay(bad)
