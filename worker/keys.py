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


#: Exists while the limiter's counters can be trusted: set once they were rebuilt from
#: PostgreSQL (worker/limiter/rebuild.lua); gone when Redis lost its data.
COUNTERS_SENTINEL = f"{LIMITER_TAG}:counters:sentinel"


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


#: Countdown tasks published and not yet run: a sorted set, message id → due unix seconds
#: (worker/countdowns.py bounds how many there are).
COUNTDOWNS = "zd:countdowns"


def wake_bookings(retry_at: float) -> str:
    """How many parked messages were booked to wake at `retry_at` (unix seconds, a window start).

    Parking spreads messages over future windows by this count, so a window wakes only as
    many messages as it can send (see worker/waiting.py `wake_in_window`).
    """
    return f"{LIMITER_TAG}:wake:{int(retry_at)}"


#: Broker messages that can never be processed (not a kombu envelope, not a Celery task
#: message, an `unacked` entry that cannot be restored), newest first: a list of JSON
#: objects {reason, at (Unix seconds), queue, source, message (the raw message)}.
#: Written by worker/broker (fetch.lua, the consumer guard, the restore guard).
DEAD_LETTERS = "zd:deadletters"


#: Last heartbeat of each worker process: a sorted set, member the process's claimant name
#: (models/claimant.py), score the Redis server time of its last beat in Unix seconds.
#: Written by worker/heartbeat.py; a member silent for WORKER_DEAD_AFTER_SECONDS is dead.
HEARTBEATS = "zd:heartbeats"

#: Which consumer process fetched each unacknowledged broker message: a hash, delivery tag
#: → claimant name. fetch.lua writes it with kombu's `unacked` entry; the transport's QoS
#: removes it with that entry; the sweep restores the messages of a dead consumer.
UNACKED_OWNERS = "zd:unacked_owners"
#: Bumped (INCR) whenever a webhook or the health check changes an instance's status: every
#: process's routing snapshot (models/instance_store.py) reloads when it sees a new value.
ROUTING_VERSION = "zd:routing:version"


def webhook_connection_seen(instance: str) -> str:
    """Latest `date_time` of `instance`'s connection webhooks (worker/webhooks/newer.lua)."""
    return f"zd:webhooks:connection_seen:{instance}"


#: Webhooks received, by outcome (a hash: outcome → count), for `/metrics`.
WEBHOOK_OUTCOMES = "zd:webhooks:outcomes"


#: Mirror of the `pauses` table (PostgreSQL is the truth): a hash `<scope>:<target>` → unix
#: seconds paused since, plus the field `_` so an empty mirror differs from a missing one.
#: Rewritten by every pause and resume; expires so a lost race heals (worker/pauses.py).
PAUSES = "zd:pauses"


#: Bumped on every change of the `not_on_whatsapp` table: each process reads the rows added
#: since its last load when the number differs from the one it saw (worker/not_on_whatsapp.py).
NOT_ON_WHATSAPP_VERSION = "zd:not_on_whatsapp:version"
#: Bumped when a number is forgotten: each process then reloads its whole copy.
NOT_ON_WHATSAPP_FORGETS = "zd:not_on_whatsapp:forgets"
