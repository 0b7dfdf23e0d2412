"""docker-compose.yml: valid against the Compose Specification schema (offline), with the
services, profile, healthchecks and dependencies the stack needs."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
import yaml

from tests.services import ROOT

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
