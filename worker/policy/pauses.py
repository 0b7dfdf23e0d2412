"""Pauses: which messages wait and which instances leave routing while an operator says so.

Three scopes: `all` sending, one `instance` (it leaves routing; its contacts fall back as
for an offline number), one `campaign` (its messages wait). A held message is parked
`waiting` until a resume wakes it; nothing is lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class PauseScope(StrEnum):
    ALL = "all"
    INSTANCE = "instance"
    CAMPAIGN = "campaign"


@dataclass(frozen=True, slots=True)
class PauseEntry:
    """One pause in force: `target` is '' for `all`; `since` is unix seconds."""

    scope: PauseScope
    target: str
    since: float


def scope_of(instance: str | None, campaign: str | None) -> tuple[PauseScope, str]:
    """The scope an operator named: `--instance`, `--campaign`, or neither (all sending).

    Raises ValueError when both are given or one is empty."""
    if instance is not None and campaign is not None:
        raise ValueError("give --instance or --campaign, not both")
    for label, value in (("instance", instance), ("campaign", campaign)):
        if value is not None and not value.strip():
            raise ValueError(f"{label} must not be empty")
    if instance is not None:
        return PauseScope.INSTANCE, instance
    if campaign is not None:
        return PauseScope.CAMPAIGN, campaign
    return PauseScope.ALL, ""


_EMPTY: Mapping[str, float] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PauseSet:
    """Every pause in force; `*_since` values are unix seconds."""

    all_since: float | None = None
    instances: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    campaigns: Mapping[str, float] = field(default_factory=lambda: _EMPTY)

    @classmethod
    def of(cls, entries: Iterable[PauseEntry]) -> PauseSet:
        all_since: float | None = None
        instances: dict[str, float] = {}
        campaigns: dict[str, float] = {}
        for entry in entries:
            if entry.scope is PauseScope.ALL:
                all_since = entry.since
            elif entry.scope is PauseScope.INSTANCE:
                instances[entry.target] = entry.since
            else:
                campaigns[entry.target] = entry.since
        return cls(all_since, MappingProxyType(instances), MappingProxyType(campaigns))

    @property
    def empty(self) -> bool:
        return self.all_since is None and not self.instances and not self.campaigns

    def holding(self, campaign: str | None) -> str | None:
        """Why a message of `campaign` must wait now, or None when it may be sent."""
        if self.all_since is not None:
            return "all sending paused"
        if campaign is not None and campaign in self.campaigns:
            return f"campaign {campaign!r} paused"
        return None

    def entries(self) -> list[PauseEntry]:
        """Every pause, all sending first, then instances and campaigns by name."""
        found = [] if self.all_since is None else [PauseEntry(PauseScope.ALL, "", self.all_since)]
        found += [PauseEntry(PauseScope.INSTANCE, n, s) for n, s in sorted(self.instances.items())]
        found += [PauseEntry(PauseScope.CAMPAIGN, n, s) for n, s in sorted(self.campaigns.items())]
        return found
