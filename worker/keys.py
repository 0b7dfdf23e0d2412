"""Every Redis key this project writes, named once (arq's habit).

Limiter keys carry the `{zd}` hash tag so that one Lua script can touch all of them on
Redis Cluster (they hash to one slot). Window ids are appended by the script itself:
`hour_window` = floor(local_seconds / 3600) and `day_window` = floor(local_seconds / 86400),
where local_seconds is the limiter clock shifted by the UTC offset of `TIMEZONE`.

The broker's keys are kombu's, not ours: the queue lists (`celery`, `zapdispatch.monitor`),
`unacked` and `unacked_index`. worker/broker/fetch.lua writes the last two in kombu's own
layout and takes their names from the kombu channel.
"""

from __future__ import annotations

LIMITER_TAG = "{zd}"

#: Test/bench clock: unix seconds as a decimal string. Read only when TEST_CLOCK_ENABLED.
TEST_CLOCK = f"{LIMITER_TAG}:clock"


def hour_counter_prefix(instance: str) -> str:
    """Sends reserved on `instance` in one local hour: `<prefix>:<hour_window>` (an integer)."""
    return f"{LIMITER_TAG}:sent:hour:{instance}"


def day_counter_prefix(instance: str) -> str:
    """Sends reserved on `instance` in one local day: `<prefix>:<day_window>` (an integer)."""
    return f"{LIMITER_TAG}:sent:day:{instance}"


def instance_last_send(instance: str) -> str:
    """Unix seconds (float string) of the last slot reserved on `instance` (pacing)."""
    return f"{LIMITER_TAG}:last:instance:{instance}"


def phone_last_send(phone: str) -> str:
    """Unix seconds (float string) of the last slot reserved for a recipient, any instance."""
    return f"{LIMITER_TAG}:last:phone:{phone}"


def lock(name: str) -> str:
    """A mutual-exclusion lock held by one process at a time (health check, sweeps)."""
    return f"zd:lock:{name}"


def alert_throttle(name: str) -> str:
    """Free-form small state owned by the monitor (kept out of the limiter's slot)."""
    return f"zd:monitor:{name}"


def hour_counter(instance: str, hour_window: int) -> str:
    """The hourly counter of `instance` for one window (what reserve.lua builds from the prefix)."""
    return f"{hour_counter_prefix(instance)}:{hour_window}"


def day_counter(instance: str, day_window: int) -> str:
    """The daily counter of `instance` for one window (what reserve.lua builds from the prefix)."""
    return f"{day_counter_prefix(instance)}:{day_window}"


#: Set once by the sweep; its absence means Redis lost its data (restart without disk).
SENTINEL = "zd:sentinel"


def wake_bookings(retry_at: float) -> str:
    """How many parked messages were booked to wake at `retry_at` (unix seconds, a window start).

    Parking spreads messages over future windows by this count, so a window wakes only as
    many messages as it can send (see worker/delivery.py `_parking_time`).
    """
    return f"{LIMITER_TAG}:wake:{int(retry_at)}"


#: Mirror of the `pauses` table (PostgreSQL is the truth): a hash `<scope>:<target>` → unix
#: seconds paused since, plus the field `_` so an empty mirror differs from a missing one.
#: Rewritten by every pause and resume; expires so a lost race heals (worker/pauses.py).
PAUSES = "zd:pauses"


#: Bumped on every change of the `not_on_whatsapp` table: each process reads the rows added
#: since its last load when the number differs from the one it saw (worker/not_on_whatsapp.py).
NOT_ON_WHATSAPP_VERSION = "zd:not_on_whatsapp:version"
#: Bumped when a number is forgotten: each process then reloads its whole copy.
NOT_ON_WHATSAPP_FORGETS = "zd:not_on_whatsapp:forgets"
