"""`zapdispatch instances add` probes Evolution and registers the webhook; `instances
webhook NAME` re-registers (a subprocess against the simulator)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.simulator_server import SimulatorHandle, running_simulator
from tests.support.processes import service_env
from tests.support.services import run_cli

KEY = "sim-key"
TOKEN = "hook-token-0123456789abcdef0123456789"
HOOK_URL = "https://zap.example.com/webhooks/evolution"


@pytest.fixture
def sim() -> Iterator[SimulatorHandle]:
    with running_simulator(["inst-a", "inst-b"], api_key=KEY) as handle:
        handle.configure_instance("inst-b", state="close", disconnection_reason=401)
        yield handle


def cli_env(
    database_url: str, redis_url: str, sim: SimulatorHandle, **extra: str
) -> dict[str, str]:
    values = service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        EVOLUTION_API_URL=sim.url,
        EVOLUTION_API_KEY=KEY,
        **extra,
    )
    values.pop("API_TOKEN", None)
    return values


def add(env: dict[str, str], name: str) -> Any:
    return run_cli(
        env, "instances", "add", name, "--phone", "11988887777", "--hourly", "5", "--daily", "50"
    )


def listed(env: dict[str, str]) -> dict[str, str]:
    rows = json.loads(run_cli(env, "instances", "list", "--json").stdout)
    return {r["name"]: r["status"] for r in rows}


def found_webhook(sim: SimulatorHandle, name: str) -> Any:
    return httpx.get(f"{sim.url}/webhook/find/{name}", headers={"apikey": KEY}).json()


def test_add_records_evolutions_state_at_once(
    database_url: str, redis_url: str, redis_client: redis.Redis, sim: SimulatorHandle
) -> None:
    env = cli_env(database_url, redis_url, sim)
    out = add(env, "inst-a")
    assert out.returncode == 0, out.stderr
    assert "status connected" in out.stdout and "webhook" not in out.stdout
    assert add(env, "inst-b").returncode == 0
    missing = add(env, "inst-z")  # not in Evolution: stays disconnected, says why
    assert missing.returncode == 0 and "did not say" in missing.stdout
    assert listed(env) == {
        "inst-a": "connected",
        "inst-b": "disconnected",
        "inst-z": "disconnected",
    }
    assert found_webhook(sim, "inst-a") is None


def test_add_registers_the_webhook_and_webhook_re_registers(
    database_url: str, redis_url: str, redis_client: redis.Redis, sim: SimulatorHandle
) -> None:
    env = cli_env(database_url, redis_url, sim, PUBLIC_WEBHOOK_URL=HOOK_URL, WEBHOOK_TOKEN=TOKEN)
    out = add(env, "inst-a")
    assert out.returncode == 0 and "webhook registered" in out.stdout, out.stdout + out.stderr
    assert TOKEN not in out.stdout + out.stderr
    hook = found_webhook(sim, "inst-a")
    assert hook["url"] == HOOK_URL and hook["enabled"] is True and hook["by_events"] is False
    assert hook["headers"] == {"Authorization": f"Bearer {TOKEN}"}
    assert set(hook["events"]) == {
        "CONNECTION_UPDATE",
        "STATUS_INSTANCE",
        "MESSAGES_UPDATE",
        "MESSAGES_UPSERT",
    }
    again = run_cli(env, "instances", "webhook", "inst-a")
    assert again.returncode == 0 and "webhook registered" in again.stdout
    unknown = run_cli(env, "instances", "webhook", "nobody")
    assert unknown.returncode == 2 and "no instance named" in unknown.stderr


def test_webhook_without_a_token_is_a_clear_error(
    database_url: str, redis_url: str, redis_client: redis.Redis, sim: SimulatorHandle
) -> None:
    env = cli_env(database_url, redis_url, sim, PUBLIC_WEBHOOK_URL=HOOK_URL)
    out = add(env, "inst-a")
    assert out.returncode == 0 and "webhook NOT registered" in out.stdout
    again = run_cli(env, "instances", "webhook", "inst-a")
    assert again.returncode == 2 and "WEBHOOK_TOKEN" in again.stderr
