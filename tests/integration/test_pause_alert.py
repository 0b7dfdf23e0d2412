"""The health check reminds while all sending is paused (the alert machinery: opens once,
reminds every ALERT_REPEAT_MINUTES, resolves on resume)."""

from __future__ import annotations

import httpx

from models.alert_store import AlertStore
from tests.integration.test_monitor_health import World, alerts_of, with_text, world
from worker.controls import Controls
from worker.evolution import AsyncEvolutionClient
from worker.monitor.alerts import AlertManager
from worker.monitor.health import HealthMonitor, policy_from

__all__ = ["world"]


def monitor_with_pauses(w: World) -> HealthMonitor:
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
