"""`zapdispatch up`: which children it starts and with what environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from config import Settings
from worker.devstack import Ports, child_env, child_specs, wants_simulator
from worker.flower_config import export_flower_env

PORTS = Ports(api=18000, flower=15555, simulator=18081)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EVOLUTION_API_URL", "FLOWER_BASIC_AUTH"):
        monkeypatch.delenv(name, raising=False)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


def test_without_evolution_url_the_simulator_starts_first() -> None:
    s = settings()
    assert wants_simulator(s)
    specs = child_specs(s, PORTS, Path("/tmp/x"))
    assert [spec.name for spec in specs] == ["simulator", "worker", "beat", "flower", "api"]
    assert specs[0].argv[-4:] == ["--port", "18081", "--instances", "inst-a,inst-b,inst-c"]
    assert "--schedule=/tmp/x/celerybeat-schedule" in specs[2].argv
    assert "--port=15555" in specs[3].argv and specs[4].argv[-1] == "18000"
    env = child_env(s, PORTS, {"PATH": "/bin"})
    assert env["EVOLUTION_API_URL"] == "http://127.0.0.1:18081"
    assert env["PATH"] == "/bin" and env["REDIS_URL"] == s.redis_url


def test_with_evolution_url_no_simulator() -> None:
    s = settings(evolution_api_url="https://evo.example.com", flower_basic_auth=SecretStr("ops:pw"))
    assert not wants_simulator(s)
    assert "simulator" not in [spec.name for spec in child_specs(s, PORTS, Path("/tmp"))]
    env = child_env(s, PORTS, {})
    assert "EVOLUTION_API_URL" not in env and env["FLOWER_BASIC_AUTH"] == "ops:pw"


def test_flower_basic_auth_is_exported_from_settings_unless_set() -> None:
    s = settings(flower_basic_auth=SecretStr("ops:pw"))
    environ: dict[str, str] = {}
    assert export_flower_env(s, environ) and environ == {"FLOWER_BASIC_AUTH": "ops:pw"}
    environ = {"FLOWER_BASIC_AUTH": "mine:pw"}
    assert not export_flower_env(s, environ) and environ["FLOWER_BASIC_AUTH"] == "mine:pw"
    assert not export_flower_env(settings(), {})
