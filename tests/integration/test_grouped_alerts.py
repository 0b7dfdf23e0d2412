"""A mass outage is one Slack post: 100 numbers going down in one health check are opened,
reminded and resolved as one message naming all of them; a number recovering alone is
resolved alone. Same world as test_monitor_health (simulator, fake Slack, fixed clock)."""

from __future__ import annotations

import re

from tests.integration.test_monitor_health import HOUR, World, alerts_of
from tests.integration.test_monitor_health import world as world  # noqa: PLC0414 - fixture

DOWN = [f"n{i:03d}" for i in range(100)]


def names_in(text: str) -> list[str]:
    return sorted(set(re.findall(r"n\d{3}", text)))


def test_hundred_numbers_down_is_one_post_reminded_and_resolved_as_groups(world: World) -> None:
    world.add("keep")  # one stays up: the pool's own "nothing online" alert is not part of this
    for name in DOWN:
        world.add(name)
    world.run()
    assert world.slack_texts() == []

    for name in DOWN:
        world.sim.configure_instance(name, state="close")
    report = world.run()
    assert report.alerts.opened == 100 and report.notifications.sent == 100
    (post,) = world.slack_texts()
    assert "🔴 *100 instances offline*" in post
    assert "100 instances: n000, n001," in post
    assert names_in(post) == DOWN
    assert "… and 80 more." in post  # the members' own texts: the first 20 only

    world.advance(HOUR)
    world.run()
    (reminder,) = world.slack_texts()[1:]
    assert "*Still open: 100 instances offline*" in reminder and names_in(reminder) == DOWN

    world.sim.configure_instance("n042", state="open")
    world.run()
    (alone,) = world.slack_texts()[2:]
    assert "✅ *Resolved: Instance n042 offline*" in alone
    assert "Cleared: instance 'n042' is now 🟢 connected." in alone
    assert alone.count("Instance n042 offline") == 1  # said once

    for name in DOWN:
        world.sim.configure_instance(name, state="open")
    world.run()
    (resolved,) = world.slack_texts()[3:]
    assert "✅ *Resolved: 99 instances no longer offline*" in resolved
    assert names_in(resolved) == [n for n in DOWN if n != "n042"]
    assert all(resolved for _, _, resolved in alerts_of(world))
