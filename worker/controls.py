"""Operator controls shared by the CLI and the API: pause and resume sending, campaigns.

Names are checked here (an unknown instance is a `ControlError`), times come from the
limiter clock, and every answer is a JSON-ready dict.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import Any

from models.campaign_store import CampaignStore, CampaignSummary
from models.enums import MessageState
from models.instance_store import InstanceStore, UnknownInstance
from models.views import to_datetime
from worker.message_input import MAX_CAMPAIGN_CHARS
from worker.pauses import PauseBoard
from worker.policy.pauses import PauseEntry, PauseScope, PauseSet, scope_of
from worker.stats import iso


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


def campaign_json(summary: CampaignSummary, pauses: PauseSet) -> dict[str, Any]:
    """One campaign: `total`, `by_state` (every state, zero-filled), `receipts` (known
    ones), `first_at`/`last_at` (accepted), `paused` and `paused_since`."""
    since = pauses.campaigns.get(summary.name)
    return {
        "campaign": summary.name,
        "total": summary.total,
        "by_state": {s.value: summary.by_state.get(s.value, 0) for s in MessageState},
        "receipts": dict(sorted(summary.receipts.items())),
        "first_at": iso(summary.first_at),
        "last_at": iso(summary.last_at),
        "paused": since is not None,
        "paused_since": None if since is None else to_datetime(since).isoformat(),
    }


class Controls:
    def __init__(
        self,
        board: PauseBoard,
        instances: InstanceStore,
        clock: Callable[[], float],
        campaigns: CampaignStore | None = None,
    ) -> None:
        self._board = board
        self._instances = instances
        self._clock = clock
        self._campaigns = campaigns

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

    def cancel_campaign(self, name: str) -> dict[str, Any]:
        """Its `queued` and `waiting` messages become `cancelled`; returns how many."""
        name = self._campaign_name(name)
        cancelled = self._campaign_store().cancel(name, to_datetime(self._clock()))
        return {"campaign": name, "cancelled": cancelled}

    def campaigns(self) -> list[dict[str, Any]]:
        pauses = self._board.fresh()
        return [campaign_json(c, pauses) for c in self._campaign_store().summaries()]

    def _campaign_store(self) -> CampaignStore:
        if self._campaigns is None:  # pragma: no cover - wiring error
            raise ControlError("campaign controls are not available here")
        return self._campaigns

    @staticmethod
    def _campaign_name(name: str) -> str:
        if not name.strip() or len(name) > MAX_CAMPAIGN_CHARS:
            raise ControlError(f"campaign must have 1..{MAX_CAMPAIGN_CHARS} characters")
        _printable(name, "campaign")
        return name

    def _scope(self, instance: str | None, campaign: str | None) -> tuple[PauseScope, str]:
        try:
            scope, target = scope_of(instance, campaign)
        except ValueError as exc:
            raise ControlError(str(exc)) from None
        _printable(target, scope.value)
        if scope is PauseScope.INSTANCE:
            try:
                self._instances.get(target)
            except UnknownInstance as exc:
                raise ControlError(str(exc)) from None
        if len(target) > 100:
            raise ControlError("campaign must have 1..100 characters")
        return scope, target


def _printable(name: str, what: str) -> None:
    """Names hold no control characters (NUL cannot even be stored): ControlError otherwise."""
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ControlError(f"{what} must not contain control characters")
