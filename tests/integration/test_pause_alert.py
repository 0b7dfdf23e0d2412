"""The health check reminds while all sending is paused (the alert machinery: opens once,
reminds every ALERT_REPEAT_MINUTES, resolves on resume), and judges a warming number's load
against its effective caps."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import httpx

from models.alert_store import AlertStore
from models.views import to_datetime
from tests.integration.test_monitor_health import World, alerts_of, with_text, world
from worker.controls import Controls
from worker.evolution import AsyncEvolutionClient
from worker.limiter import Candidate
from worker.monitor.alert_manager import AlertManager
from worker.monitor.health_check import HealthMonitor, policy_from

__all__ = ["world"]


def monitor_with_pauses(
    w: World, warmup: tuple[tuple[int, ...], ZoneInfo] | None = None
) -> HealthMonitor:
    sim = w.sim
    return HealthMonitor(
        policy=policy_from(w.res.settings),
        instances=w.res.instances,
        alerts=AlertManager(AlertStore(w.res.sessions), w.notifiers()),
        evolution=lambda: AsyncEvolutionClient(sim.url, sim.api_key, timeout=httpx.Timeout(5.0)),
        limiter=w.res.limiter,
        client=w.redis,
        clock=w.clock,
        poll=w.poll,
        pauses=w.res.pauses,
        warmup=warmup,
    )


def test_all_sending_paused_alerts_reminds_and_resolves_on_resume(world: World) -> None:
    world.add("a")
    world.monitor = monitor_with_pauses(world)
    controls = Controls(world.res.pauses, world.res.instances, world.res.limiter.now)
    controls.pause(campaign="nov")  # a campaign pause is no reason to remind anyone
    world.run()
    assert alerts_of(world) == []

    controls.pause()
    world.run()
    assert alerts_of(world) == [("sending_paused", "", False)]
    assert len(with_text(world.slack_texts(), "All sending is paused")) == 1
    world.advance(30 * 60)
    world.run()
    assert len(with_text(world.slack_texts(), "All sending is paused")) == 1
    world.advance(31 * 60)
    world.run()
    reminders = with_text(world.slack_texts(), "All sending is paused")
    assert len(reminders) == 2 and "1.0 h ago" in reminders[-1]

    controls.resume()
    world.run()
    assert alerts_of(world) == [("sending_paused", "", True)]
    assert with_text(world.slack_texts(), "sending was resumed")


def test_capacity_alert_counts_a_warming_number_against_its_effective_caps(
    world: World,
) -> None:
    world.add("a")  # 100 an hour, 1,000 a day; day 1 of a 10-a-day ramp: 1 an hour
    world.res.instances.restart_warmup("a", to_datetime(world.clock.now()))
    for i in range(9):
        world.res.limiter.reserve([Candidate("a", 100, 1000)], phone=f"55119{i:08d}")
    world.monitor = monitor_with_pauses(world)
    world.run()
    assert alerts_of(world) == []  # 9 of 100 an hour: not high
    world.monitor = monitor_with_pauses(world, warmup=((10,), world.res.settings.zone))
    world.run()
    assert alerts_of(world) == [("capacity_high", "a", False)]
