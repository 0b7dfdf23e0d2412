"""The circuit breaker's parameters, and what "online" means for an instance.

One definition each, used by routing, the dashboard (`worker/stats.py`) and the alert rules
(`worker/monitor/rules.py`). Pure: no I/O, no clock; `now` is unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from models.views import CircuitState, InstanceView

if TYPE_CHECKING:
    from config import Settings


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """`failure_threshold` send failures in a row open an instance's breaker (out of
    routing); `cooldown_seconds` after it opened it is half-open (a trial send may go)."""

    failure_threshold: int = 5
    cooldown_seconds: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> BreakerPolicy:
        """CIRCUIT_FAILURE_THRESHOLD and CIRCUIT_COOLDOWN_SECONDS."""
        return cls(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds)

    def circuit(self, view: InstanceView, now: float) -> CircuitState:
        """`view`'s breaker state at `now`."""
        return view.circuit(
            now, threshold=self.failure_threshold, cooldown_seconds=self.cooldown_seconds
        )


def is_online(view: InstanceView, circuit: CircuitState) -> bool:
    """Online: can deliver now. Active, connected, and its breaker (`circuit`, from
    `BreakerPolicy.circuit`) not open; Evolution's `open` state alone proves no delivery.

    Mirrored, for speed, by `worker.routing.RoutingTable` (its usable candidates are the
    online instances; tests/unit/test_routing.py checks they agree) and, without the
    breaker, by the SQL of `models.instance_store.InstanceStore.routable`.
    """
    return view.active and view.connected and circuit is not CircuitState.OPEN
