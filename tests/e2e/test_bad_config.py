"""Config that cannot work stops every process at start-up: one line naming the variable,
exit status 2, and no message taken off the queue (a worker never acknowledges a message
it could not process because of its own configuration)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis

from tests.support.processes import producer, service_env
from tests.support.services import ROOT

pytestmark = pytest.mark.e2e

SECRET = "k3y-value"

#: variable, bad value, part of the one-line error
BAD_VALUES = [
    ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/zapdispatch", "psycopg 3 driver"),
    ("EVOLUTION_API_KEY", f"{SECRET}\r\nX-Injected: 1", "control characters"),
    ("API_TOKEN", f"{SECRET} with spaces", "visible ASCII"),
    ("REDIS_URL", "redis://127.0.0.1:6379/db", "database must be a number"),
    ("MAX_COUNTDOWN_SECONDS", "7200", "below BROKER_VISIBILITY_TIMEOUT_SECONDS"),
]

PROCESSES = {
    "worker": ["-m", "celery", "-A", "worker", "worker", "--pool=solo", "--without-mingle"],
    "beat": ["-m", "celery", "-A", "worker", "beat"],
    "flower": ["-m", "celery", "-A", "worker", "flower", "--port=0"],
    "api": ["-m", "worker.cli", "api", "--port=1"],  # never bound: the config is refused first
    "cli": ["-m", "worker.cli", "status"],
}


@pytest.mark.parametrize(("variable", "value", "says"), BAD_VALUES)
def test_every_process_refuses_config_that_cannot_work(
    variable: str,
    value: str,
    says: str,
    database_url: str,
    redis_url: str,
    redis_client: redis.Redis,
) -> None:
    producer(redis_url).send_task(
        "zapdispatch.send_message", kwargs={"phone": "+55 11 98888-0001", "text": "waits"}
    )
    env = service_env(**{"DATABASE_URL": database_url, "REDIS_URL": redis_url, variable: value})
    for name, args in PROCESSES.items():
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        output = (done.stdout + done.stderr).strip()
        assert done.returncode == 2, (name, done.returncode, output[-2000:])
        assert output == output.splitlines()[0], (name, output[-2000:])
        assert output.startswith(f"invalid configuration: {variable}"), (name, output)
        assert says in output and SECRET not in output, (name, output)
    assert redis_client.llen("celery") == 1  # nothing consumed
    assert redis_client.hlen("unacked") == 0
