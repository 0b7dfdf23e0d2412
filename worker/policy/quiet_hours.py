"""Quiet hours in the recipient's local time (QUIET_HOURS): nothing is sent to a number
while its local clock is inside the window; the message waits until the window ends.

The recipient's zone comes from the number itself (libphonenumber's time-zone data, e.g.
+55 92 → America/Manaus); when the number maps to several zones, or to none, TIMEZONE.
A window is (start, end) in minutes after local midnight; start > end crosses midnight
(22:00-08:00). Pure: `now` is unix seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

#: Spread of wake-ups after a quiet window ends (seconds), so a night's messages do not all
#: wake at 08:00:00; the limiter's caps spread them further.
QUIET_WAKE_SPREAD_SECONDS = 900.0


@lru_cache(maxsize=100_000)
def zone_name_for(phone: str) -> str | None:
    """The one time zone libphonenumber maps `phone` (digits with country code) to, or None
    when it maps to several or none."""
    try:
        number = phonenumbers.parse("+" + phone.lstrip("+"))
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(number) if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else None


def recipient_zone(phone: str, default: ZoneInfo) -> ZoneInfo:
    """The recipient's zone from its number; `default` (TIMEZONE) when ambiguous or unknown."""
    name = zone_name_for(phone)
    if name is None:
        return default
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:  # pragma: no cover - libphonenumber and tzdata disagree
        return default


def quiet_until(now: float, zone: ZoneInfo, window: tuple[int, int]) -> float | None:
    """When the quiet window containing `now` ends (unix seconds), or None when `now` is
    outside it. The end is the window's end time on the local day it falls on."""
    start, end = window
    local = datetime.fromtimestamp(now, tz=UTC).astimezone(zone)
    minute = local.hour * 60 + local.minute
    crosses = start > end
    inside = (minute >= start or minute < end) if crosses else start <= minute < end
    if not inside:
        return None
    day = local.date() + timedelta(days=1) if crosses and minute >= start else local.date()
    ends = datetime.combine(day, time(end // 60, end % 60), tzinfo=zone)
    return max(now, ends.timestamp())
