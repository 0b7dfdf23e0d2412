"""The README's newcomer walk-through, run as written: `make run` in one process, then each
`$ ` line of the ```console walkthrough block, in order, in one bash session from the
repository root (`source .venv/bin/activate` included); the message it sends ends `sent`.

Every line runs: a `zapdispatch` subcommand the build does not have fails the test, as does
a line that fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.processes import service_env, wait_until
from tests.support.services import ROOT, free_port, run_cli

pytestmark = pytest.mark.e2e

START_TIMEOUT_SECONDS = 120.0
SENT_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 45.0


def walkthrough_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```console walkthrough\n(.*?)```", readme, re.DOTALL)
    assert block, "README has no ```console walkthrough block"
    return [line[2:] for line in block.group(1).splitlines() if line.startswith("$ ")]


def known_subcommands(env: dict[str, str]) -> set[str]:
    listing = run_cli(env, "--help").stdout
    commands = listing.split("Commands:", 1)[1]
    return {line.split()[0] for line in commands.splitlines() if line.strip()}


def livez(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_readme_walkthrough(
    database_url: str, redis_url: str, redis_client: object, tmp_path: Path
) -> None:
    commands = walkthrough_commands()
    assert commands[0] == "source .venv/bin/activate"
    ports = {name: free_port() for name in ("API_PORT", "FLOWER_PORT", "SIMULATOR_PORT")}
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, **{k: str(v) for k, v in ports.items()}
    )
    env.pop("EVOLUTION_API_URL", None)
    env.pop("VIRTUAL_ENV", None)
    known = known_subcommands(env)
    missing = [
        c for c in commands if (u := re.search(r"zapdispatch (\w[\w-]*)", c)) and u[1] not in known
    ]
    assert not missing, f"walk-through lines naming commands this build lacks: {missing}"
    runnable = commands

    log_path = tmp_path / "make-run.log"
    log = log_path.open("w+")
    make = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = lambda: log_path.read_text(errors="replace")  # noqa: E731
    try:
        wait_until(lambda: livez(ports["API_PORT"]), START_TIMEOUT_SECONDS, "the API")
        wait_until(lambda: "ready." in output(), START_TIMEOUT_SECONDS, "the worker")
        script = (
            "set -euo pipefail\n"
            + "\n".join(f"echo '>>> {c}'\n{c}" for c in runnable)
            + '\necho "MESSAGE_ID=$id"\n'
        )
        shell = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert shell.returncode == 0, (shell.stdout[-3000:], shell.stderr[-3000:])
        out = shell.stdout
        assert "inst-a" in out and "connected" in out  # instances list
        assert "timeline:" in out and "accepted" in out  # messages show
        message_id = re.findall(r"MESSAGE_ID=(\S+)", out)[-1]

        def state() -> str:
            shown = run_cli(env, "messages", "show", message_id, "--json")
            assert shown.returncode == 0, shown.stderr
            return str(json.loads(shown.stdout)["state"])

        wait_until(lambda: state() == "sent", SENT_TIMEOUT_SECONDS, f"{message_id} sent")
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGTERM)
            try:
                make.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(make.pid, signal.SIGKILL)
                make.wait()
        log.close()
