"""Recording what the poll or a webhook observed about one instance's connection.

Both sources go through `record_observation`: the same mapping (`states.py`), the same
rules (a banned number stays banned until an operator un-bans it; an observation older than
the one behind the current status is ignored), the same ban migration. Alerts are then
planned from the recorded statuses by the health monitor, so whichever source saw an
incident first, it raises one alert.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from models.views import StatusChange
from worker.monitor.states import Observation

log = logging.getLogger("zapdispatch.health")


@dataclass(frozen=True, slots=True)
class Recorded:
    """The change recorded (None: nothing changed) and, for a new ban, the contacts that
    lost their preference for the number."""

    change: StatusChange | None
    migrated: int | None = None


def record_observation(
    instances: InstanceStore, name: str, seen: Observation, at: datetime, observed_at: datetime
) -> Recorded:
    """Record `seen` on instance `name` (raises `UnknownInstance`); a new ban migrates the
    number's contacts off it."""
    change = instances.set_status(
        name, seen.status, seen.reason, at, observed_at=observed_at, sticky_ban=True
    )
    if change is None:
        return Recorded(None)
    log_change(change)
    if change.new is not InstanceStatus.BANNED:
        return Recorded(change)
    moved = instances.migrate_contacts_off(name)
    log.critical(
        "instance %s banned (%s): %d contacts lose their preference", name, seen.reason, moved
    )
    return Recorded(change, moved)


def log_change(change: StatusChange) -> None:
    level = logging.INFO if change.new is InstanceStatus.CONNECTED else logging.WARNING
    log.log(
        level,
        "instance %s: %s → %s (%s)",
        change.instance,
        change.old,
        change.new,
        change.reason or "-",
    )
