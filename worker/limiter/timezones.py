"""Calendar windows in a time zone, as plain arithmetic on unix seconds.

Lua (inside Redis) cannot do time-zone math, so Python hands it an *offset table*: a short
list of `(utc_from, offset)` pairs, sorted, each meaning "from unix second `utc_from` on, local
time is UTC + `offset` seconds" (until the next pair). Window ids and window ends are computed
from that table by the same rules here and in `reserve.lua`:

- local seconds = now + offset(now);
  hour_window = floor(local / 3600), day_window = floor(local / 86400).
- A window's end is the first unix second after `now` at which the window id changes.
  Without a transition that is `(window + 1) * length - offset`. Across a transition the
  offset *valid at the end* is used: spring forward ends the window at the transition when
  the local clock jumps past it; fall back keeps the window id through the repeated local
  time, so a repeated hour is one window lasting two real hours, and such a day lasts 25 h.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

HOUR_SECONDS = 3600
DAY_SECONDS = 86400
_SAMPLE_SECONDS = 3600  # no real zone changes its offset twice within an hour

OffsetTable = Sequence[tuple[float, int]]


def utc_offset(zone: ZoneInfo, at: float) -> int:
    """UTC offset of `zone` at unix second `at`, in seconds (local = utc + offset)."""
    delta = datetime.fromtimestamp(at, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def _transition_after(zone: ZoneInfo, start: float, stop: float) -> float:
    """First unix second in (start, stop] whose offset differs from the one at `start`."""
    before, low, high = utc_offset(zone, start), math.floor(start), math.ceil(stop)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if utc_offset(zone, middle) == before else (low, middle)
    return float(high)


def offset_table(zone: ZoneInfo, around: float, span_seconds: float) -> list[tuple[float, int]]:
    """Offsets of `zone` over [around - span, around + span] (unix seconds), as (utc_from, offset).

    The first pair starts at `around - span_seconds`; one more pair per offset change.
    """
    start, stop = around - span_seconds, around + span_seconds
    table = [(start, utc_offset(zone, start))]
    cursor = start
    while cursor < stop:
        step = min(cursor + _SAMPLE_SECONDS, stop)
        if utc_offset(zone, step) != table[-1][1]:
            change = _transition_after(zone, cursor, step)
            table.append((change, utc_offset(zone, change)))
        cursor = step
    return table


def segment_index(table: OffsetTable, now: float) -> int:
    """Index of the pair in force at `now` (the last one starting at or before it)."""
    index = 0
    for position, (utc_from, _) in enumerate(table):
        if utc_from <= now:
            index = position
    return index


def window_id(offset: int, now: float, length: int) -> int:
    """Window number of `now` for windows of `length` seconds of local time."""
    return math.floor((now + offset) / length)


def end_from_table(table: OffsetTable, now: float, length: int) -> float:
    """Unix second at which the window holding `now` ends (the rule `reserve.lua` applies)."""
    first = segment_index(table, now)
    window = window_id(table[first][1], now, length)
    for index in range(first, len(table)):
        utc_from, offset = table[index]
        if index > first and window_id(offset, utc_from, length) != window:
            return utc_from
        end = float((window + 1) * length - offset)
        if index + 1 == len(table) or end < table[index + 1][0]:
            return end
    raise AssertionError("unreachable: the last pair always returns")


def window_ids(zone: ZoneInfo, now: float) -> tuple[int, int]:
    """(hour_window, day_window) of unix second `now` in `zone`."""
    offset = utc_offset(zone, now)
    return window_id(offset, now, HOUR_SECONDS), window_id(offset, now, DAY_SECONDS)


def window_end(zone: ZoneInfo, now: float, length: int) -> float:
    """Unix second at which the `length`-second local window (hour or day) holding `now` ends."""
    return end_from_table(offset_table(zone, now, 2 * DAY_SECONDS), now, length)


def window_start(zone: ZoneInfo, now: float, length: int) -> float:
    """Unix second at which the `length`-second local window holding `now` began, with the
    offset in force at `now` (across a DST change inside the window this is off by the
    change: an hour early or late)."""
    offset = utc_offset(zone, now)
    return float(window_id(offset, now, length) * length - offset)
