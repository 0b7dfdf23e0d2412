"""Sticky routing policy on plain values (sticky and the fallback table)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from models.enums import InstanceStatus
from models.views import InstanceView
from worker.breaker import BreakerPolicy, is_online
from worker.routing import (
    FallbackReason,
    RouteRequest,
    demoted_instance,
    plan_route,
    routing_table,
)

NOW = 1_790_000_000.0
BREAKER = BreakerPolicy(failure_threshold=5, cooldown_seconds=120)


def inst(
    name: str,
    status: InstanceStatus = InstanceStatus.CONNECTED,
    *,
    active: bool = True,
    failures: int = 0,
    opened_ago: float | None = None,
) -> InstanceView:
    opened = datetime.fromtimestamp(NOW - opened_ago, UTC) if opened_ago is not None else None
    return InstanceView(
        name=name,
        phone="5511900000000",
        status=status,
        hourly_cap=10,
        daily_cap=100,
        active=active,
        consecutive_failures=failures,
        circuit_opened_at=opened,
    )


def names(request: RouteRequest) -> list[str]:
    return [c.name for c in plan_route(request, BREAKER).candidates]


POOL = [inst("a"), inst("b"), inst("c")]


def test_new_contact_may_use_every_available_instance_least_loaded_first() -> None:
    plan = plan_route(RouteRequest(None, POOL, NOW), BREAKER)
    assert [c.name for c in plan.candidates] == ["a", "b", "c"]
    assert plan.strict == 0 and plan.fallback is FallbackReason.NEW_CONTACT


def test_existing_contact_tries_its_preferred_instance_first_and_strictly() -> None:
    plan = plan_route(RouteRequest("b", POOL, NOW), BREAKER)
    assert [c.name for c in plan.candidates] == ["b", "a", "c"]
    assert plan.strict == 1 and plan.fallback is None


def test_preferred_offline_falls_back_to_the_others() -> None:
    pool = [inst("a"), inst("b", InstanceStatus.DISCONNECTED), inst("c")]
    plan = plan_route(RouteRequest("b", pool, NOW), BREAKER)
    assert [c.name for c in plan.candidates] == ["a", "c"]
    assert plan.fallback is FallbackReason.PREFERRED_UNAVAILABLE


def test_banned_and_inactive_instances_are_never_candidates() -> None:
    pool = [inst("a", InstanceStatus.BANNED), inst("b", active=False), inst("c")]
    assert names(RouteRequest("a", pool, NOW)) == ["c"]


def test_open_circuit_leaves_routing_until_half_open() -> None:
    pool = [inst("a", failures=5, opened_ago=10), inst("b")]
    plan = plan_route(RouteRequest("a", pool, NOW), BREAKER)
    assert [c.name for c in plan.candidates] == ["b"]
    assert plan.fallback is FallbackReason.PREFERRED_CIRCUIT_OPEN
    half_open = [inst("a", failures=5, opened_ago=500), inst("b")]
    assert names(RouteRequest("a", half_open, NOW)) == ["a", "b"]


def test_nothing_online_gives_an_empty_plan() -> None:
    pool = [inst("a", InstanceStatus.DISCONNECTED), inst("b", InstanceStatus.CONNECTING)]
    assert plan_route(RouteRequest(None, pool, NOW), BREAKER).empty


def test_sticky_patience_waits_for_the_preferred_instance_only() -> None:
    young = RouteRequest("b", POOL, NOW, message_age_seconds=5, sticky_patience_seconds=60)
    assert names(young) == ["b"]
    old = RouteRequest("b", POOL, NOW, message_age_seconds=61, sticky_patience_seconds=60)
    assert names(old) == ["b", "a", "c"]


def test_sticky_patience_waits_while_the_preferred_is_briefly_offline_but_not_banned() -> None:
    offline = [inst("a"), inst("b", InstanceStatus.CONNECTING)]
    plan = plan_route(RouteRequest("b", offline, NOW, 5, 60), BREAKER)
    assert plan.waiting_for_preferred and plan.empty
    banned = [inst("a"), inst("b", InstanceStatus.BANNED)]
    assert names(RouteRequest("b", banned, NOW, 5, 60)) == ["a"]


def test_an_instance_that_keeps_failing_this_message_is_tried_last() -> None:
    plan = plan_route(RouteRequest("a", POOL, NOW, demote="a"), BREAKER)
    assert [c.name for c in plan.candidates] == ["b", "c", "a"]
    assert plan.fallback is FallbackReason.PREFERRED_FAILING


def test_one_routing_table_serves_decisions_at_any_time() -> None:
    """Built once per snapshot; a breaker's cooldown still ends on time with the same table."""
    pool = [inst("a", failures=5, opened_ago=10), inst("b"), inst("c", InstanceStatus.BANNED)]
    table = routing_table(pool, BREAKER)
    for now in (NOW, NOW + 50, NOW + 110, NOW + 111, NOW + 500):
        with_table = plan_route(RouteRequest("a", pool, now, table=table), BREAKER)
        assert with_table == plan_route(RouteRequest("a", pool, now), BREAKER)
    assert names(RouteRequest("a", pool, NOW + 109, table=table)) == ["b"]
    assert names(RouteRequest("a", pool, NOW + 111, table=table)) == ["a", "b"]


def test_healthy_instances_come_before_half_open_ones_for_a_new_contact() -> None:
    pool = [inst("a", failures=5, opened_ago=500), inst("b"), inst("c")]
    assert names(RouteRequest(None, pool, NOW)) == ["b", "c", "a"]


def test_instances_that_failed_lately_are_offered_only_after_the_others() -> None:
    pool = [inst("a", failures=1), inst("b"), inst("c")]
    new_contact = plan_route(RouteRequest(None, pool, NOW), BREAKER)
    assert [c.name for c in new_contact.candidates] == ["b", "c", "a"]
    assert [c.name for c in new_contact.first_choice or ()] == ["b", "c"]
    sticky_to_failing = plan_route(RouteRequest("a", pool, NOW), BREAKER)
    assert [c.name for c in sticky_to_failing.candidates] == ["a", "b", "c"]
    assert sticky_to_failing.first_choice is None  # the rest are all healthy
    sticky_to_healthy = plan_route(RouteRequest("b", pool, NOW), BREAKER)
    assert [c.name for c in sticky_to_healthy.first_choice or ()] == ["b", "c"]
    assert plan_route(RouteRequest(None, POOL, NOW), BREAKER).first_choice is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(InstanceStatus)),
            st.booleans(),
            st.integers(min_value=0, max_value=8),
            st.none() | st.floats(min_value=0, max_value=300),
        ),
        max_size=12,
    )
)
def test_usable_candidates_are_exactly_the_online_instances(
    pool: list[tuple[InstanceStatus, bool, int, float | None]],
) -> None:
    """The routing table's two-step filter agrees with the one definition of online."""
    views = [
        inst(f"i{n}", status, active=active, failures=failures, opened_ago=ago)
        for n, (status, active, failures, ago) in enumerate(pool)
    ]
    usable = routing_table(views, BREAKER).usable(NOW, BREAKER)
    online = {v.name for v in views if is_online(v, BREAKER.circuit(v, NOW))}
    assert {c.name for c in usable} == online
    assert len(usable) == len(online)


def test_a_message_is_demoted_off_an_instance_it_failed_on_more_than_once() -> None:
    assert demoted_instance("a", 2, "TransientEvolutionError on a: 502") == "a"
    assert demoted_instance("a", 1, "TransientEvolutionError on a: 502") is None
    assert demoted_instance("a", 3, None) is None
    assert demoted_instance(None, 3, "boom") is None
