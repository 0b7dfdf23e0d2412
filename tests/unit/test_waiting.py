"""The waiting decision on plain values: requeue (a countdown) or park (a time)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker.limiter.timezones import DAY_SECONDS, HOUR_SECONDS
from worker.waiting import (
    Park,
    ParkInWindow,
    Requeue,
    WaitPolicy,
    after_send_failure,
    backoff_seconds,
    before_asking_again,
    for_capacity,
    for_instances,
    for_licence,
    for_preferred,
    for_quiet_hours,
    wake_in_window,
)

NOW = 1_790_000_000.0
POLICY = WaitPolicy(
    max_countdown_seconds=300.0,
    sticky_patience_seconds=0.0,
    offline_backoff_seconds=10.0,
    offline_backoff_max_seconds=600.0,
    retry_backoff_seconds=5.0,
    retry_backoff_max_seconds=600.0,
    max_send_attempts=5,
)
PATIENT = replace(POLICY, sticky_patience_seconds=60.0)


def capacity(retry_in: float, **changes: object) -> object:
    values: dict[str, object] = {
        "now": NOW,
        "retry_at": NOW + retry_in,
        "caps_full": True,
        "created_at": NOW,
        "expires_at": NOW + 2 * DAY_SECONDS,
        "patient": False,
        "capacity_hour": 10,
        "capacity_day": 100,
        "jitter": 0.0,
        "wake_jitter": 0.0,
        "policy": POLICY,
    }
    return for_capacity(**{**values, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempt", "expected"), [(0, 5.0), (1, 5.0), (2, 10.0), (3, 20.0), (8, 600.0), (30, 600.0)]
)
def test_backoff_doubles_from_base_up_to_its_cap(attempt: int, expected: float) -> None:
    assert backoff_seconds(attempt, 5.0, 600.0) == expected


def test_a_wait_that_fits_a_countdown_is_a_requeue_with_its_jitter() -> None:
    assert capacity(120.0, jitter=3.0) == Requeue(123.0)
    assert capacity(-5.0) == Requeue(0.0)  # a slot free already: run again now
    assert capacity(300.0) == Requeue(300.0)  # exactly the longest countdown


def test_a_pacing_gap_longer_than_a_countdown_parks_until_it_ends() -> None:
    assert capacity(400.0, caps_full=False, wake_jitter=2.0) == Park(NOW + 402.0)
    assert capacity(400.0, caps_full=False, expires_at=NOW + 350.0) == Park(NOW + 350.0)


def test_full_caps_park_in_the_window_they_reopen_hourly_or_daily() -> None:
    hourly = capacity(1800.0, wake_jitter=1.0)
    assert hourly == ParkInWindow(
        window_start=NOW + 1800.0,
        window_seconds=HOUR_SECONDS,
        capacity=10,
        expires_at=NOW + 2 * DAY_SECONDS,
        jitter=1.0,
        booking_ttl_seconds=1800 + 2 * DAY_SECONDS,
    )
    daily = capacity(5 * HOUR_SECONDS)
    assert isinstance(daily, ParkInWindow)
    assert (daily.window_seconds, daily.capacity) == (DAY_SECONDS, 100)


def test_bookings_fill_a_window_then_the_next_one() -> None:
    window = ParkInWindow(NOW, HOUR_SECONDS, 10, NOW + DAY_SECONDS, 0.5, 0)
    assert wake_in_window(window, 1) == Park(NOW + 0.5)
    assert wake_in_window(window, 10) == Park(NOW + 0.5)
    assert wake_in_window(window, 11) == Park(NOW + HOUR_SECONDS + 0.5)
    assert wake_in_window(window, 10_000) == Park(NOW + DAY_SECONDS)  # never past expiry
    assert wake_in_window(ParkInWindow(NOW, HOUR_SECONDS, 0, NOW + DAY_SECONDS, 0, 0), 2) == Park(
        NOW + HOUR_SECONDS
    )  # no capacity counts as one


def test_patience_cuts_a_capacity_wait_to_what_is_left_of_it() -> None:
    assert capacity(600.0, patient=True, created_at=NOW - 20.0, policy=PATIENT) == Requeue(40.0)
    assert capacity(600.0, patient=True, created_at=NOW - 90.0, policy=PATIENT) == Requeue(1.0)


def test_waiting_for_the_preferred_instance_asks_again_after_the_offline_backoff() -> None:
    assert for_preferred(NOW, NOW - 20.0, PATIENT) == Requeue(10.0)
    assert for_preferred(NOW, NOW - 55.0, PATIENT) == Requeue(5.0)  # patience ends sooner
    assert for_preferred(NOW, NOW - 90.0, PATIENT) == Requeue(1.0)  # at least a second


def test_nothing_online_backs_off_on_requeues_within_a_countdown() -> None:
    assert for_instances(0, POLICY) == Requeue(10.0)
    assert for_instances(2, POLICY) == Requeue(40.0)
    assert for_instances(10, POLICY) == Requeue(300.0)  # the cap, cut to a countdown


def test_a_send_failure_retries_parks_or_gives_up() -> None:
    assert after_send_failure(1, NOW, None, POLICY) == Requeue(5.0)
    assert after_send_failure(3, NOW, None, POLICY) == Requeue(20.0)
    assert after_send_failure(5, NOW, None, POLICY) is None  # attempts used up
    assert after_send_failure(1, NOW, 60.0, POLICY) == Requeue(60.0)  # the number's pause
    assert after_send_failure(1, NOW, 9999.0, POLICY) == Park(NOW + 600.0)  # capped, parked
    many = replace(POLICY, max_send_attempts=9)
    assert after_send_failure(8, NOW, None, many) == Park(NOW + 600.0)


def test_a_look_up_that_cannot_be_answered_now_backs_off_on_requeues() -> None:
    assert before_asking_again(0, POLICY) == 5.0
    assert before_asking_again(3, POLICY) == 40.0


def test_quiet_hours_park_until_their_end_spread_never_past_expiry() -> None:
    assert for_quiet_hours(NOW + 3600.0, 120.0, NOW + DAY_SECONDS) == Park(NOW + 3720.0)
    assert for_quiet_hours(NOW + 3600.0, 120.0, NOW + 60.0) == Park(NOW + 60.0)


def test_an_unactivated_evolution_parks_for_the_offline_backoff_beyond_any_countdown() -> None:
    assert for_licence(0, NOW, POLICY) == Park(NOW + 10.0)
    assert for_licence(2, NOW, POLICY) == Park(NOW + 40.0)
    # Parked, not a countdown, even past MAX_COUNTDOWN_SECONDS (300 s here).
    assert for_licence(10, NOW, POLICY) == Park(NOW + 600.0)
