"""Warm-up on real PostgreSQL and Redis: a warming number sends exactly its ramp each day,
routing shares new contacts by effective capacity, and every view shows the caps in force."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from fastapi.testclient import TestClient

from models.views import to_datetime
from tests.support.evolution import T0
from tests.support.stack import Stack, phone
from worker.api import create_app, deps_from_resources
from worker.delivery import Result

DAY = 86_400.0
LONG_AGO = to_datetime(T0 - 30 * DAY)


def deliver_all(stack: Stack, ids: list) -> Counter[Result]:  # type: ignore[type-arg]
    return Counter(stack.dispatcher.deliver(i).result for i in ids)


def test_a_warming_number_sends_exactly_its_ramp_on_day_1_and_day_2(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(warmup_schedule="5,8")
    stack.add_instance("a", hourly=100, daily=100)
    stack.res.instances.restart_warmup("a", to_datetime(T0))
    ids = [stack.accept(phone(i), ttl_seconds=3 * 86_400) for i in range(20)]
    day1 = deliver_all(stack, ids)
    assert day1[Result.SENT] == 5 and len(stack.evolution.sent) == 5
    stack.set_clock(T0 + DAY)  # 10:00 the next local day
    pending = [i for i in ids if not stack.res.messages.get(i).state.terminal]
    day2 = deliver_all(stack, pending)
    assert day2[Result.SENT] == 8 and len(stack.evolution.sent) == 13
    stack.set_clock(T0 + 2 * DAY)  # the schedule is over: its own caps (100 a day)
    pending = [i for i in ids if not stack.res.messages.get(i).state.terminal]
    assert deliver_all(stack, pending)[Result.SENT] == 7


def test_restart_warmup_starts_the_ramp_again(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(warmup_schedule="3")
    stack.add_instance("a", hourly=100, daily=100)
    stack.res.instances.restart_warmup("a", LONG_AGO)
    assert deliver_all(stack, [stack.accept(phone(i)) for i in range(5)])[Result.SENT] == 5
    stack.res.instances.restart_warmup("a", to_datetime(T0))
    assert deliver_all(stack, [stack.accept(phone(i)) for i in range(5, 10)])[Result.SENT] == 0


def test_new_contacts_spread_in_proportion_to_effective_capacity(
    make_stack: Callable[..., Stack],
) -> None:
    """a and c are warm (1,000 an hour); b is on day 1 of a 2,500-a-day ramp (250 an hour)."""
    stack = make_stack(warmup_schedule="2500,5000")
    for name in ("a", "b", "c"):
        stack.add_instance(name, hourly=1000, daily=10_000)
        stack.res.instances.restart_warmup(name, LONG_AGO)
    stack.res.instances.restart_warmup("b", to_datetime(T0))
    contacts = 1000
    for i in range(contacts):
        stack.dispatcher.deliver(stack.accept(phone(i), contact_id=f"doc-{i}"))
    share = Counter(r["instance"] for r in stack.evolution.sent)
    print(f"new contacts per instance over {contacts}: {dict(sorted(share.items()))}")
    expected = {"a": 1000 / 2250, "b": 250 / 2250, "c": 1000 / 2250}
    for name, part in expected.items():
        assert abs(share[name] / contacts - part) < 0.01, share


def test_rows_api_and_metrics_show_the_caps_in_force(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(warmup_schedule="20,30")
    stack.add_instance("a", hourly=60, daily=500)
    stack.add_instance("b", hourly=60, daily=500)
    stack.res.instances.restart_warmup("a", to_datetime(T0 - DAY))
    stack.res.instances.restart_warmup("b", LONG_AGO)
    client = TestClient(create_app(deps_from_resources(stack.res)))
    rows = {r["name"]: r for r in client.get("/dashboard/instances").json()["instances"]}
    assert (rows["a"]["warmup_day"], rows["a"]["effective_hourly_cap"]) == (2, 3)
    assert rows["a"]["effective_daily_cap"] == 30 and rows["a"]["capacity_day"] == 500
    assert rows["b"]["warmup_day"] is None and rows["b"]["effective_daily_cap"] == 500
    metrics = client.get("/metrics").text
    assert 'zapdispatch_instance_warmup_day{instance="a"} 2.0' in metrics
    assert 'zapdispatch_instance_effective_daily_cap{instance="a"} 30.0' in metrics
    assert 'zapdispatch_instance_effective_hourly_cap{instance="b"} 60.0' in metrics
