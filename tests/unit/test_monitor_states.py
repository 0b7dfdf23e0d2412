"""Evolution state → instance status (the decisions in states.py)."""

from __future__ import annotations

import pytest

from models.enums import InstanceStatus
from worker.evolution import (
    EvolutionAuthError,
    InstanceState,
    InstanceUnavailable,
    TransientEvolutionError,
)
from worker.evolution.bodies import NOT_LOADED
from worker.monitor.states import (
    NOT_LOADED_REASON,
    UNKNOWN_TO_EVOLUTION,
    Observation,
    map_state,
    observe,
)

S = InstanceStatus


@pytest.mark.parametrize(
    ("state", "code", "status"),
    [
        ("open", None, S.CONNECTED),
        ("connecting", None, S.CONNECTING),
        ("refused", None, S.CONNECTING),
        ("close", None, S.DISCONNECTED),
        ("close", 401, S.DISCONNECTED),  # logged out: not a ban
        ("close", 402, S.BANNED),  # BAN_REASON_CODES' default: 402, 403, 406
        ("close", 406, S.BANNED),
        ("close", 403, S.BANNED),
        ("close", 500, S.DISCONNECTED),
        ("weird", None, S.DISCONNECTED),
        ("open", 403, S.CONNECTED),  # a stale reason on an open session is ignored
    ],
)
def test_map_state(state: str, code: int | None, status: InstanceStatus) -> None:
    assert map_state(state, code).status is status


def test_ban_codes_are_configurable() -> None:
    assert map_state("close", 402, frozenset({403})).status is S.DISCONNECTED
    assert map_state("close", 401, frozenset({401})).status is S.BANNED


def test_reasons_name_the_code() -> None:
    assert "401" in (map_state("close", 401).reason or "")
    assert "403" in (map_state("close", 403).reason or "")
    assert map_state("open", None).reason is None


def test_absent_instance_is_unknown_to_evolution() -> None:
    seen = observe(None)
    assert (seen.status, seen.reason) == (S.DISCONNECTED, UNKNOWN_TO_EVOLUTION)


def test_404_probe_is_unknown_to_evolution() -> None:
    seen = observe(InstanceUnavailable("gone", instance="a", status_code=404))
    assert (seen.status, seen.reason) == (S.DISCONNECTED, UNKNOWN_TO_EVOLUTION)


def test_failed_probes_are_disconnected_with_a_reason() -> None:
    timeout = observe(TransientEvolutionError("slow", instance="a"))
    auth = observe(EvolutionAuthError("no", instance="a", status_code=401))
    assert timeout.status is S.DISCONNECTED and "no answer" in (timeout.reason or "")
    assert auth.status is S.DISCONNECTED and "API key" in (auth.reason or "")


def test_observe_state() -> None:
    assert observe(InstanceState("a", "close", 403, None)).status is S.BANNED


def test_an_instance_not_loaded_is_disconnected_never_open() -> None:
    seen = observe(InstanceState("idle", NOT_LOADED, None, None))
    assert seen == Observation(S.DISCONNECTED, NOT_LOADED_REASON)
