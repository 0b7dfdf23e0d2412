"""`python -m worker.beat_check`, compose's beat healthcheck: healthy only while the health
check beat schedules has run recently (real Redis, the test clock)."""

from __future__ import annotations

import os
import subprocess
import sys

import redis

from tests.support.services import ROOT
from worker.beat_check import beat_problem
from worker.clock import set_test_clock
from worker.monitor.health_check import LAST_RUN_KEY

T0 = 1_795_438_800.0


def test_beat_problem_by_age(redis_client: redis.Redis) -> None:
    assert beat_problem(redis_client, T0, 180) == "no health check has run yet"
    redis_client.set(LAST_RUN_KEY, repr(T0 - 60))
    assert beat_problem(redis_client, T0, 180) is None
    assert beat_problem(redis_client, T0 + 200, 180) == (
        "the last health check ran 260 s ago (more than 180 s)"
    )


def test_the_healthcheck_command(redis_url: str, redis_client: redis.Redis) -> None:
    env = {**os.environ, "REDIS_URL": redis_url, "TEST_CLOCK_ENABLED": "true"}
    command = [sys.executable, "-m", "worker.beat_check", "180"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, check=False
        )

    set_test_clock(redis_client, T0)
    stale = run()
    assert stale.returncode == 1
    assert stale.stderr.strip() == "beat unhealthy: no health check has run yet"
    redis_client.set(LAST_RUN_KEY, repr(T0 - 30))
    assert run().returncode == 0
