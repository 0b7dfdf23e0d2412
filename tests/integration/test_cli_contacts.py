"""`zapdispatch contacts show|optout|optin` as an operator runs it (a subprocess)."""

from __future__ import annotations

import json

import pytest
import redis
from sqlalchemy import Engine, insert, select

from models.tables import Contact, OptOut
from tests.support.processes import service_env
from tests.support.services import run_cli


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


def test_optout_show_optin_by_id_and_by_phone(env: dict[str, str], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Contact).values(id="doc-1", phone="5511999998888"))
    assert "contact doc-1 opted out" in ok(env, "contacts", "optout", "doc-1")
    shown = json.loads(ok(env, "contacts", "show", "doc-1", "--json"))
    assert shown["id"] == "doc-1" and shown["opted_out"] is True
    assert shown["phone"] != "5511999998888"  # masked
    assert "contact doc-1 opted in" in ok(env, "contacts", "optin", "doc-1")

    said = ok(env, "contacts", "optout", "+55 (11) 99999-8888")  # by phone, any format
    assert "opted out (1 contact(s) with it)" in said and "99999-8888" not in said
    by_phone = json.loads(ok(env, "contacts", "show", "11 99999-8888", "--json"))
    assert by_phone["id"] == "doc-1" and by_phone["opted_out"] is True
    with engine.connect() as conn:
        assert conn.scalars(select(OptOut.phone)).all() == ["5511999998888"]
    ok(env, "contacts", "optin", "5511999998888")
    with engine.connect() as conn:
        assert conn.scalars(select(OptOut.phone)).all() == []
    table = ok(env, "contacts", "show", "doc-1")
    assert "doc-1" in table and "OPTED OUT" in table


def test_an_unknown_phone_is_opted_out_without_a_contact(
    env: dict[str, str], engine: Engine
) -> None:
    assert "(0 contact(s) with it)" in ok(env, "contacts", "optout", "+5511988887777")
    with engine.connect() as conn:
        assert conn.scalars(select(OptOut.phone)).all() == ["5511988887777"]


def test_unknown_contacts_are_a_clear_error(env: dict[str, str]) -> None:
    shown = run_cli(env, "contacts", "show", "nobody")
    assert shown.returncode == 2 and "no contact has id or phone" in shown.stderr
    out = run_cli(env, "contacts", "optout", "nobody")
    assert out.returncode == 2 and "not a phone number" in out.stderr
