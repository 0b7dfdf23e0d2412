"""docker-compose.yml: valid against the Compose Specification schema (offline), with the
services, profile, healthchecks and dependencies the stack needs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from config import Settings
from tests.support.services import ROOT
from worker.instance_import import read_entries

SCHEMA = ROOT / "tests" / "data" / "compose-spec.subset.json"
APP_SERVICES = {"migrate", "worker", "beat", "flower", "api", "simulator"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_valid_against_the_compose_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(compose)


def test_the_schema_rejects_a_typo(compose: dict[str, Any]) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["helthcheck"] = broken["services"]["api"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, json.loads(SCHEMA.read_text()))


def test_every_service_of_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"redis", "postgres", *APP_SERVICES}
    assert services["simulator"]["profiles"] == ["dev"]
    assert all("profiles" not in s for name, s in services.items() if name != "simulator")


def test_healthchecks_everywhere_but_the_one_shot_migration(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "migrate":
            assert "healthcheck" not in service and service["restart"] == "no"
            assert "alembic upgrade head" in " ".join(service["command"])
        else:
            assert service["healthcheck"]["test"], name


def test_apps_start_after_migrations_on_healthy_stores(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in APP_SERVICES - {"migrate"}:
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"


def test_configuration_comes_from_dotenv(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == [{"path": ".env", "required": False}], name
        assert "uv run" in " ".join(service["command"]), name
    assert (ROOT / ".env.example").is_file()
    example = (ROOT / ".env.example").read_text()
    for variable in (
        "DATABASE_URL",
        "REDIS_URL",
        "EVOLUTION_API_URL",
        "API_TOKEN",
        "FLOWER_BASIC_AUTH",
        "TIMEZONE",
        "SLACK_BOT_TOKEN",
    ):
        assert variable in example


def test_processes_use_the_documented_commands(compose: dict[str, Any]) -> None:
    commands = {name: " ".join(s.get("command", [])) for name, s in compose["services"].items()}
    assert "celery -A worker worker" in commands["worker"]
    assert "celery -A worker beat" in commands["beat"]
    assert "celery -A worker flower" in commands["flower"]
    assert "zapdispatch api" in commands["api"]
    assert "zapdispatch simulator" in commands["simulator"]


def test_published_ports_stay_on_the_hosts_loopback(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port


# -- compose as is: the generated .env, the instance import, the README's steps -------------
_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}")


class MissingVariable(ValueError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` (what `docker compose
    config` resolves from the project's .env), over the whole document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if op == ":?":
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        return arg if op == ":-" else ""

    return _VARIABLE.sub(one, value.replace("$$", "\0")).replace("\0", "$")


def dotenv(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


@pytest.fixture
def generated(tmp_path: Path) -> Path:
    """A checkout's files plus what `scripts/compose-env.sh` writes, in a scratch directory."""
    for name in (".env.example", "instances.example.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    script = ROOT / "scripts" / "compose-env.sh"
    first = subprocess.run(
        ["sh", str(script), str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "API_TOKEN: generated into .env",
        "WEBHOOK_TOKEN: generated into .env",
        "FLOWER_BASIC_AUTH: generated into .env",
    ]
    return tmp_path


def test_compose_env_generates_tokens_once(generated: Path) -> None:
    env = dotenv(generated / ".env")
    assert re.fullmatch(r"[0-9a-f]{64}", env["API_TOKEN"])
    assert re.fullmatch(r"[0-9a-f]{64}", env["WEBHOOK_TOKEN"])
    assert env["API_TOKEN"] != env["WEBHOOK_TOKEN"]
    assert re.fullmatch(r"ops:[0-9a-f]{64}", env["FLOWER_BASIC_AUTH"])
    assert (generated / ".env").stat().st_mode & 0o777 == 0o600
    again = subprocess.run(
        ["sh", str(ROOT / "scripts" / "compose-env.sh"), str(generated)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.stdout.splitlines() == [
        "API_TOKEN: already set in .env",
        "WEBHOOK_TOKEN: already set in .env",
        "FLOWER_BASIC_AUTH: already set in .env",
    ]
    assert dotenv(generated / ".env") == env
    assert (generated / "instances.yaml").read_text() == (
        ROOT / "instances.example.yaml"
    ).read_text()


def test_config_completes_with_the_generated_env(compose: dict[str, Any], generated: Path) -> None:
    env = dotenv(generated / ".env")
    resolved = interpolate(compose, env)
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(resolved)
    assert resolved["services"]["api"]["environment"]["API_TOKEN"] == env["API_TOKEN"]
    flower = resolved["services"]["flower"]["environment"]
    assert flower["FLOWER_BASIC_AUTH"] == env["FLOWER_BASIC_AUTH"]
    entries = read_entries(generated / "instances.yaml")
    assert [e.name for e in entries] == ["inst-a", "inst-b", "inst-c"]
    simulator = " ".join(resolved["services"]["simulator"]["command"])
    assert "--instances inst-a,inst-b,inst-c" in simulator  # the example matches the simulator
    migrate = " ".join(resolved["services"]["migrate"]["command"])
    assert migrate.index("alembic upgrade head") < migrate.index(
        "zapdispatch instances import instances.yaml"
    )


def test_config_refuses_to_start_without_an_api_token(compose: dict[str, Any]) -> None:
    with pytest.raises(MissingVariable, match=r"scripts/compose-env\.sh generates it"):
        interpolate(compose, dotenv(ROOT / ".env.example"))


def test_worker_pool_grace_and_a_beat_healthcheck_that_proves_ticks(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert "--pool=threads --concurrency=8" in " ".join(services["worker"]["command"])
    grace = int(services["worker"]["stop_grace_period"].removesuffix("s"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    longest_send = settings.evolution_connect_timeout_seconds + settings.evolution_timeout_seconds
    assert grace > longest_send
    assert "python -m worker.beat_check" in " ".join(services["beat"]["healthcheck"]["test"])


def test_readme_lists_the_compose_steps_in_order() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Docker compose") :]
    steps = [
        "scripts/compose-env.sh",
        "instances.yaml",
        "docker compose --profile dev up -d",
        "http://127.0.0.1:8000/",
    ]
    positions = [section.index(step) for step in steps]
    assert positions == sorted(positions)
