"""Real `celery -A worker beat` and `celery -A worker worker` subprocesses run the health
check on schedule against the Evolution simulator and a fake Slack, on the test database
and Redis. Polls with a deadline; never sleeps a fixed amount to "let things happen"."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine, func, select

from models.db import make_session_factory
from models.enums import InstanceStatus
from models.instance_store import InstanceStore
from models.tables import Alert, InstanceEvent
from tests.fakes.slack_server import running_fake_slack
from tests.simulator_server import running_simulator
from tests.support.processes import Launcher, start_worker
from worker.monitor.health_check import LAST_RUN_KEY, RUNS_KEY

pytestmark = pytest.mark.e2e

DEADLINE_SECONDS = 60.0
POLL_SECONDS = 0.2


def wait_for(condition: Callable[[], bool], what: str, logs: Path) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_SECONDS)  # polling interval, not a wait for an outcome
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(logs.glob("*.log")))
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def sessions_engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def test_beat_runs_the_health_check_on_schedule(
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
    sessions_engine: Engine,
    tmp_path: Path,
    launcher: Launcher,
) -> None:
    instances = InstanceStore(make_session_factory(sessions_engine))
    instances.add("inst-a", "5511999998888", 10, 100, status=InstanceStatus.CONNECTED)
    instances.add("inst-b", "5511999997777", 10, 100, status=InstanceStatus.CONNECTED)
    with ExitStack() as stack:
        sim = stack.enter_context(running_simulator(["inst-a", "inst-b"]))
        slack = stack.enter_context(running_fake_slack())
        sim.configure_instance("inst-b", state="close", disconnection_reason=401)
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "HEALTH_CHECK_INTERVAL_SECONDS": "1",
            "EVOLUTION_API_URL": sim.url,
            "SLACK_API_URL": slack.base_url,
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_CHANNEL": "#e2e",
            "TEST_CLOCK_ENABLED": "0",
        }
        env.pop("EVOLUTION_API_KEY", None)
        stack.callback(launcher.stop_all)  # before the simulator and Slack go away
        start_worker(launcher.celery, env, concurrency=2, name="e2e")
        launcher.celery(
            ["beat", "-l", "info", "--schedule", str(tmp_path / "beat-schedule")], env, "beat"
        )

        def runs() -> int:
            return int(redis_client.get(RUNS_KEY) or 0)

        wait_for(lambda: runs() >= 1, "the first health check", tmp_path)
        first, first_at = runs(), time.monotonic()
        wait_for(lambda: runs() >= first + 3, "three more scheduled runs", tmp_path)
        # A 1 s schedule: three more runs take a few seconds, not a minute.
        assert time.monotonic() - first_at < 20
        assert redis_client.get(LAST_RUN_KEY) is not None

        wait_for(
            lambda: any("Instance inst-b offline" in t for t in slack.texts()),
            "the offline alert in Slack",
            tmp_path,
        )
        with sessions_engine.connect() as conn:
            events = conn.execute(select(InstanceEvent.instance, InstanceEvent.new_status)).all()
            open_alerts = conn.execute(select(func.count()).select_from(Alert)).scalar_one()
        assert ("inst-b", "disconnected") in [tuple(e) for e in events]
        assert open_alerts == 1
        assert len([t for t in slack.texts() if "inst-b offline" in t]) == 1
        assert instances.get("inst-a").status is InstanceStatus.CONNECTED
        assert [m["channel"] for m in slack.messages] == ["#e2e"]
