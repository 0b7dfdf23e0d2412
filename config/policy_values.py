"""Parsers of the sending-policy variables (WARMUP_SCHEDULE, QUIET_HOURS, TYPING_DELAY_MS).

Each returns a plain (immutable, cached) value or raises ValueError with a message that
names the fault; the settings object calls them at start-up, so a bad value stops the
process there.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@lru_cache(maxsize=64)
def parse_warmup_schedule(text: str) -> tuple[int, ...]:
    """`20,30,50` → (20, 30, 50): daily caps for a number's day 1, 2, …; empty → ()."""
    if not text.strip():
        return ()
    caps: list[int] = []
    for part in text.split(","):
        item = part.strip()
        if not item.isdigit() or int(item) <= 0:
            raise ValueError(f"must be comma-separated positive integers, got {item!r}")
        caps.append(int(item))
    return tuple(caps)


@lru_cache(maxsize=64)
def parse_quiet_hours(text: str) -> tuple[int, int] | None:
    """`22:00-08:00` → (1320, 480): start and end in minutes after local midnight; the
    window may cross midnight. Empty → None (off). Equal ends are refused (ambiguous)."""
    if not text.strip():
        return None
    start_text, sep, end_text = text.strip().partition("-")
    start, end = _CLOCK.match(start_text.strip()), _CLOCK.match(end_text.strip())
    if not sep or start is None or end is None:
        raise ValueError(f"must be HH:MM-HH:MM (24-hour clock), got {text!r}")
    start_min = int(start[1]) * 60 + int(start[2])
    end_min = int(end[1]) * 60 + int(end[2])
    if start_min == end_min:
        raise ValueError("start and end are equal: give a window of at least one minute")
    return start_min, end_min


@lru_cache(maxsize=64)
def parse_typing_delay(text: str) -> tuple[int, int]:
    """`1000-3000` → (1000, 3000) milliseconds; `0-0` is off. MIN ≤ MAX, both ≥ 0."""
    low_text, sep, high_text = text.strip().partition("-")
    if not sep or not low_text.strip().isdigit() or not high_text.strip().isdigit():
        raise ValueError(f"must be MIN-MAX milliseconds, e.g. 1000-3000, got {text!r}")
    low, high = int(low_text), int(high_text)
    if low > high:
        raise ValueError(f"MIN ({low}) is above MAX ({high})")
    return low, high
