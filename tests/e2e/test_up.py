"""`zapdispatch up` runs the whole stack: a message sent with the CLI ends `sent`, and SIGTERM
stops every child."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import service_env, wait_until
from tests.support.services import ROOT, free_port, run_cli

pytestmark = pytest.mark.e2e

START_TIMEOUT_SECONDS = 60.0
SENT_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 45.0


def livez(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def message_state(env: dict[str, str], message_id: str) -> str | None:
    result = run_cli(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    recent = json.loads(result.stdout)["messages"]["recent"]
    return next((m["state"] for m in recent if m["id"] == message_id), None)


def test_up_sends_a_message_and_stops_every_child_on_sigterm(
    database_url: str, redis_url: str, redis_client: object, tmp_path: Path
) -> None:
    ports = {"api": free_port(), "flower": free_port(), "simulator": free_port()}
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, FLOWER_BASIC_AUTH="ops:secret"
    )
    env.pop("EVOLUTION_API_URL", None)
    log = (tmp_path / "up.log").open("w+")
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "up",
            "--api-port",
            str(ports["api"]),
            "--flower-port",
            str(ports["flower"]),
            "--simulator-port",
            str(ports["simulator"]),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = lambda: (tmp_path / "up.log").read_text(errors="replace")  # noqa: E731
    try:
        wait_until(lambda: livez(ports["api"]), START_TIMEOUT_SECONDS, "the API's /livez")
        wait_until(lambda: "ready." in output(), START_TIMEOUT_SECONDS, "the worker")
        sent = run_cli(env, "send", "+55 11 99999-8888", "oi")
        assert sent.returncode == 0, sent.stderr
        message_id = sent.stdout.strip()
        wait_until(
            lambda: message_state(env, message_id) == "sent",
            SENT_TIMEOUT_SECONDS,
            f"message {message_id} sent; log:\n{output()[-3000:]}",
        )
        flower = httpx.get(
            f"http://127.0.0.1:{ports['flower']}/api/workers", auth=("ops", "secret"), timeout=10
        )
        assert flower.status_code == 200
        pids = [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", output())]
        assert len(pids) == 5, output()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=STOP_TIMEOUT_SECONDS) == 0, output()[-3000:]
        wait_until(
            lambda: not any(group_alive(pid) for pid in pids),
            10,
            "every child's process group to exit",
        )
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
        log.close()
