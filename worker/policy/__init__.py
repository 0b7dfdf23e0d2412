"""Sending policy that keeps numbers alive and operators in control, as pure functions.

No I/O, no clock: callers pass `now` (unix seconds) and plain values. `pauses` (which
messages and instances are held), `warmup` (a new number's daily ramp), `quiet_hours`
(the recipient's night) and `typing` (the "typing…" delay).
"""
