"""Pauses as pure values: which messages are held, scopes named by an operator, the alert."""

from __future__ import annotations

import pytest

from models.enums import AlertKind, AlertSeverity
from worker.monitor.rules import MonitorPolicy, Snapshot, conditions
from worker.policy.pauses import PauseEntry, PauseScope, PauseSet, scope_of


def test_nothing_paused_holds_nothing() -> None:
    none = PauseSet()
    assert none.empty and none.holding(None) is None and none.holding("nov") is None


def test_all_sending_holds_every_message_and_a_campaign_only_its_own() -> None:
    assert PauseSet(all_since=1.0).holding(None) == "all sending paused"
    pauses = PauseSet.of([PauseEntry(PauseScope.CAMPAIGN, "nov", 5.0)])
    assert pauses.holding("nov") == "campaign 'nov' paused"
    assert pauses.holding("dec") is None and pauses.holding(None) is None


def test_entries_round_trip_in_a_stable_order() -> None:
    entries = [
        PauseEntry(PauseScope.CAMPAIGN, "b", 3.0),
        PauseEntry(PauseScope.INSTANCE, "x", 2.0),
        PauseEntry(PauseScope.ALL, "", 1.0),
        PauseEntry(PauseScope.CAMPAIGN, "a", 4.0),
    ]
    pauses = PauseSet.of(entries)
    assert [(e.scope.value, e.target) for e in pauses.entries()] == [
        ("all", ""), ("instance", "x"), ("campaign", "a"), ("campaign", "b"),
    ]  # fmt: skip
    assert pauses.instances == {"x": 2.0} and PauseSet.of(pauses.entries()) == pauses


@pytest.mark.parametrize(
    ("instance", "campaign", "expected"),
    [
        (None, None, (PauseScope.ALL, "")),
        ("inst-a", None, (PauseScope.INSTANCE, "inst-a")),
        (None, "nov", (PauseScope.CAMPAIGN, "nov")),
    ],
)
def test_scope_of_what_the_operator_named(
    instance: str | None, campaign: str | None, expected: tuple[PauseScope, str]
) -> None:
    assert scope_of(instance, campaign) == expected


def test_scope_of_refuses_both_or_empty() -> None:
    with pytest.raises(ValueError, match="not both"):
        scope_of("a", "b")
    with pytest.raises(ValueError, match="instance must not be empty"):
        scope_of("", None)


def test_all_paused_is_a_warning_condition_about_the_pool() -> None:
    held = conditions(Snapshot(now=7200.0, instances=[], all_paused_since=0.0), MonitorPolicy())
    assert [(c.kind, c.subject, c.severity) for c in held] == [
        (AlertKind.SENDING_PAUSED, "", AlertSeverity.WARNING)
    ]
    assert "2.0 h ago" in held[0].text.body
    assert conditions(Snapshot(now=1.0, instances=[]), MonitorPolicy()) == []
