"""Operator controls shared by the CLI and the API: pause and resume sending.

Names are checked here (an unknown instance is a `ControlError`), times come from the
limiter clock, and every answer is a JSON-ready dict.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.instance_store import InstanceStore, UnknownInstance
from models.views import to_datetime
from worker.pauses import PauseBoard
from worker.policy.pauses import PauseEntry, PauseScope, scope_of


class ControlError(ValueError):
    """An operator's control names something unknown or is malformed; `str()` says why."""


def pause_json(entry: PauseEntry) -> dict[str, Any]:
    """One pause: `scope` (`all`, `instance`, `campaign`), `target` (null for all), `since`."""
    return {
        "scope": entry.scope.value,
        "target": entry.target or None,
        "since": to_datetime(entry.since).isoformat(),
    }


def describe(entry: PauseEntry) -> str:
    if entry.scope is PauseScope.ALL:
        return "all sending"
    return f"{entry.scope.value} {entry.target}"


class Controls:
    def __init__(
        self, board: PauseBoard, instances: InstanceStore, clock: Callable[[], float]
    ) -> None:
        self._board = board
        self._instances = instances
        self._clock = clock

    def pause(self, instance: str | None = None, campaign: str | None = None) -> dict[str, Any]:
        """Pause all sending, one instance or one campaign; idempotent (keeps `since`)."""
        scope, target = self._scope(instance, campaign)
        return pause_json(self._board.pause(scope, target, self._clock()))

    def resume(self, instance: str | None = None, campaign: str | None = None) -> dict[str, Any]:
        """Lift a pause; `resumed` says whether it was in force, `woken` how many parked
        messages became due (the sweep sends them on)."""
        scope, target = self._scope(instance, campaign)
        done = self._board.resume(scope, target, self._clock())
        return {
            "scope": scope.value,
            "target": target or None,
            "resumed": done.existed,
            "woken": done.woken,
        }

    def pauses(self) -> list[dict[str, Any]]:
        return [pause_json(e) for e in self._board.fresh().entries()]

    def _scope(self, instance: str | None, campaign: str | None) -> tuple[PauseScope, str]:
        try:
            scope, target = scope_of(instance, campaign)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        if scope is PauseScope.INSTANCE:
            try:
                self._instances.get(target)
            except UnknownInstance as exc:
                raise ControlError(str(exc)) from None
        if len(target) > 100:
            raise ControlError("campaign must have 1..100 characters")
        return scope, target
