"""`zapdispatch` as an operator runs it: a subprocess on this test's PostgreSQL and Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, text

from models.alert_store import AlertStore
from models.db import make_session_factory
from models.enums import AlertKind, AlertSeverity, InstanceStatus
from models.instance_store import InstanceStore
from models.views import AlertText
from tests.support.processes import service_env
from tests.support.services import run_cli
from worker.celery_app import MESSAGES_QUEUE


@pytest.fixture
def env(database_url: str, redis_url: str, redis_client: redis.Redis) -> dict[str, str]:
    values = service_env(DATABASE_URL=database_url, REDIS_URL=redis_url)
    for name in ("API_TOKEN", "EVOLUTION_API_URL"):
        values.pop(name, None)
    return values


def ok(env: dict[str, str], *args: str) -> str:
    result = run_cli(env, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_instances_add_list_set_ban(env: dict[str, str], engine: Engine) -> None:
    out = ok(
        env,
        "instances",
        "add",
        "inst-a",
        "--phone",
        "+55 (11) 98888-7777",
        "--hourly",
        "10",
        "--daily",
        "100",
    )
    assert "5511988887777" in out
    ok(
        env,
        "instances",
        "add",
        "inst-b",
        "--phone",
        "11 98888-7776",
        "--hourly",
        "20",
        "--daily",
        "200",
    )
    listed = json.loads(ok(env, "instances", "list", "--json"))
    assert [(i["name"], i["phone"], i["capacity_hour"], i["status"]) for i in listed] == [
        ("inst-a", "5511988887777", 10, "disconnected"),
        ("inst-b", "5511988887776", 20, "disconnected"),
    ]
    assert "inst-a" in ok(env, "instances", "list")

    assert "inactive" in ok(env, "instances", "set", "inst-a", "--hourly", "5", "--inactive")
    store = InstanceStore(make_session_factory(engine))
    view = store.get("inst-a")
    assert (view.hourly_cap, view.daily_cap, view.active) == (5, 100, False)
    ok(env, "instances", "set", "inst-a", "--active", "--daily", "50")
    assert store.get("inst-a").active and store.get("inst-a").daily_cap == 50

    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contacts (id, phone, preferred_instance) VALUES "
                "('doctor-1', '5511999998888', 'inst-b'), "
                "('doctor-2', '5511999998887', 'inst-b')"
            )
        )
    out = ok(env, "instances", "ban", "inst-b")
    assert "inst-b banned; 2 contact(s) migrated" in out
    assert store.contacts_assigned() == {}
    assert store.get("inst-b").status is InstanceStatus.BANNED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["instances", "set", "nope", "--hourly", "5"], "no instance named 'nope'"),
        (["instances", "ban", "nope"], "no instance named 'nope'"),
        (
            ["instances", "add", "x", "--phone", "12", "--hourly", "1", "--daily", "1"],
            "not a valid number",
        ),
        (
            ["instances", "add", "x", "--phone", "11988887777", "--hourly", "0", "--daily", "1"],
            "0 is not in the range",
        ),
        (["instances", "set", "x"], "nothing to change"),
        (["send", "123", "oi"], "not a valid number"),
        (["send", "+55 11 9999", "oi"], "phone '+55 11 9999' is not a valid number"),
        (
            ["instances", "add", "x", "--phone", "abc", "--hourly", "1", "--daily", "1"],
            "phone 'abc' cannot be parsed",
        ),
        (["api", "--host", "0.0.0.0"], "without API_TOKEN"),
    ],
)
def test_bad_names_and_values_exit_2_with_a_clear_message(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = run_cli(env, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_instance_exits_2(env: dict[str, str]) -> None:
    args = ["instances", "add", "a", "--phone", "11988887777", "--hourly", "1", "--daily", "1"]
    ok(env, *args)
    result = run_cli(env, *args)
    assert result.returncode == 2 and "already exists" in result.stderr


def test_send_records_the_message_and_status_shows_it(
    env: dict[str, str], redis_client: redis.Redis
) -> None:
    ok(
        env,
        "instances",
        "add",
        "inst-a",
        "--phone",
        "11988887777",
        "--hourly",
        "10",
        "--daily",
        "100",
    )
    message_id = ok(env, "send", "+55 11 99999-8888", "oi doutor", "--contact", "doctor-1").strip()
    assert redis_client.llen(MESSAGES_QUEUE) == 1  # deliver_message queued
    status = json.loads(ok(env, "status", "--json"))
    assert status["status"] == "critical"  # nothing connected
    assert status["summary"]["total_instances"] == 1
    assert status["instances"][0]["contacts_assigned"] == 0  # CONTACTS filled
    assert status["messages"]["by_state"]["queued"] == 1
    recent = status["messages"]["recent"]
    assert recent[0]["id"] == message_id and recent[0]["state"] == "queued"
    assert recent[0]["phone"] == "5511*******88"
    text = ok(env, "status")
    assert message_id in text and "queued 1" in text and "inst-a" in text


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "must not be empty"),
        ("x" * 65, "65 characters; at most 64"),
        ("inst\nERROR forged line", "printable characters only, not U+000A"),
        ("inst\rb", "not U+000D"),
        ("inst\x1b[31m", "not U+001B"),
        ("inst\u200bb", "not U+200B"),
        (" inst", "start or end with a space"),
    ],
)
def test_bad_instance_names_exit_2_with_one_line(
    env: dict[str, str], engine: Engine, name: str, says: str
) -> None:
    commands = [
        ["instances", "add", name, "--phone", "+55 11 98888-7777", "--hourly", "1", "--daily", "2"],
        ["instances", "set", name, "--hourly", "5"],
        ["instances", "ban", name],
    ]
    for command in commands:
        result = run_cli(env, *command)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and says in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM instances")).scalar_one() == 0


def test_names_of_any_script_and_symbols_are_accepted(env: dict[str, str]) -> None:
    for name in ("x" * 64, "número-1", "<!channel> & <@U123>", "a b"):
        ok(
            env,
            "instances",
            "add",
            name,
            "--phone",
            "+55 11 98888-7777",
            "--hourly",
            "1",
            "--daily",
            "2",
        )
    assert len(json.loads(ok(env, "instances", "list", "--json"))) == 4


def test_instances_unban_resolves_the_ban_alert(env: dict[str, str], engine: Engine) -> None:
    ok(env, "instances", "add", "inst-b", "--phone", "11988887776", "--hourly", "2", "--daily", "9")
    assert "not banned; nothing to do" in ok(env, "instances", "unban", "inst-b")
    ok(env, "instances", "ban", "inst-b")
    sessions = make_session_factory(engine)
    alerts = AlertStore(sessions)
    opened = alerts.open(
        AlertKind.INSTANCE_BANNED,
        "inst-b",
        AlertSeverity.CRITICAL,
        AlertText("Instance inst-b BANNED", "inst-b was banned."),
        now=datetime.now(tz=UTC),
        channels=[],
    )
    assert opened is not None
    out = ok(env, "instances", "unban", "inst-b")
    assert (
        out.strip() == "inst-b unbanned: disconnected until seen connected; its ban alert resolved"
    )
    view = InstanceStore(sessions).get("inst-b")
    assert view.status is InstanceStatus.DISCONNECTED
    assert view.status_reason == "unbanned by operator (zapdispatch instances unban); until seen"
    assert alerts.open_alerts() == []
    result = run_cli(env, "instances", "unban", "nope")
    assert result.returncode == 2 and "no instance named 'nope'" in result.stderr


def test_messages_list_and_show(env: dict[str, str], engine: Engine) -> None:
    ok(env, "instances", "add", "inst-a", "--phone", "11988887777", "--hourly", "9", "--daily", "9")
    first = ok(env, "send", "+55 11 99999-8888", "oi", "--contact", "doctor-1").strip()
    second = ok(env, "send", "+55 11 99999-7777", "ola", "--contact", "doctor-2").strip()
    with engine.begin() as conn:
        conn.execute(text("UPDATE messages SET campaign = 'promo' WHERE id = :id"), {"id": second})
    listed = json.loads(ok(env, "messages", "list", "--json"))
    assert [m["id"] for m in listed["messages"]] == [second, first]
    assert listed["messages"][0]["phone"] == "5511*******77"
    promo = json.loads(ok(env, "messages", "list", "--campaign", "promo", "--json"))
    assert [m["id"] for m in promo["messages"]] == [second]
    by_contact = json.loads(ok(env, "messages", "list", "--contact", "doctor-1", "--json"))
    assert [m["id"] for m in by_contact["messages"]] == [first]
    paged = json.loads(ok(env, "messages", "list", "--limit", "1", "--json"))
    assert paged["next_before"] == second
    text_out = ok(env, "messages", "list", "--state", "queued")
    assert first in text_out and second in text_out and "promo" in text_out
    assert "99999" not in text_out

    shown = json.loads(ok(env, "messages", "show", first, "--json"))
    assert shown["id"] == first and shown["state"] == "queued"
    assert [e["kind"] for e in shown["timeline"]] == ["accepted"]
    human = ok(env, "messages", "show", first)
    assert "timeline:" in human and "accepted" in human and "5511*******88" in human
    for args, message in [
        (["messages", "show", "nope"], "not a message id: 'nope'"),
        (["messages", "show", "00000000-0000-0000-0000-000000000000"], "no message"),
        (["messages", "list", "--state", "lost"], "'lost' is not one of"),
    ]:
        result = run_cli(env, *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_instances_import_is_idempotent(
    env: dict[str, str], engine: Engine, tmp_path: Path
) -> None:
    pool = tmp_path / "instances.yaml"
    pool.write_text(
        "instances:\n"
        "  - {name: inst-a, phone: '+55 11 90000-0001', hourly: 30, daily: 200}\n"
        "  - {name: inst-b, phone: '11 90000-0002', hourly: 20, daily: 100, active: false}\n"
    )
    assert ok(env, "instances", "import", str(pool)).splitlines() == [
        "inst-a: added (30/hour, 200/day)",
        "inst-b: added (20/hour, 100/day)",
    ]
    assert ok(env, "instances", "import", str(pool)).splitlines() == [
        "inst-a: unchanged",
        "inst-b: unchanged",
    ]
    store = InstanceStore(make_session_factory(engine))
    assert store.get("inst-a").phone == "5511900000001" and not store.get("inst-b").active
    pool.write_text(
        "- {name: inst-a, phone: '+55 11 90000-0001', hourly: 40, daily: 200}\n"
        "- {name: inst-b, phone: '+55 11 90000-0009', hourly: 20, daily: 100}\n"
    )
    result = run_cli(env, "instances", "import", str(pool))
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "inst-a: updated (hourly 30 → 40)",
        "inst-b: error (registered with another phone (5511900000002); not changed by an import)",
    ]
    assert "1 of 2 instance(s) not applied" in result.stderr
    assert store.get("inst-a").hourly_cap == 40
    for content, message in [
        ("instances: 3", "expected a list of instances"),
        ("- {name: x, phone: '1', hourly: 0, daily: 1}", "instance #1: hourly: Input should be"),
        ("- {name: x, phone: '1', hourly: 1, daily: 1, colour: red}", "colour: Extra inputs"),
        ("[", "is not valid YAML"),
    ]:
        pool.write_text(content)
        bad = run_cli(env, "instances", "import", str(pool))
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
    missing = run_cli(env, "instances", "import", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
