"""`zapdispatch pause`, `resume` and what `status` says about them, as an operator runs them."""

from __future__ import annotations

import json

from sqlalchemy import Engine, text

from tests.integration.test_cli import env, ok
from tests.support.services import run_cli

__all__ = ["env"]


def test_pause_resume_and_status(env: dict[str, str]) -> None:
    ok(
        env,
        "instances",
        "add",
        "inst-a",
        "--phone",
        "11 98888-7777",
        "--hourly",
        "5",
        "--daily",
        "9",
    )
    assert ok(env, "pause").startswith("paused all sending (since ")
    assert ok(env, "pause", "--campaign", "nov").startswith("paused campaign nov (since ")
    paused = json.loads(ok(env, "pause", "--instance", "inst-a", "--json"))
    assert paused["scope"] == "instance" and paused["target"] == "inst-a"

    status = json.loads(ok(env, "status", "--json"))
    assert [(p["scope"], p["target"]) for p in status["pauses"]] == [
        ("all", None), ("instance", "inst-a"), ("campaign", "nov"),
    ]  # fmt: skip
    assert status["instances"][0]["paused"] is True
    text = ok(env, "status")
    assert "paused: all sending since " in text and "campaign nov since" in text
    listed = json.loads(ok(env, "instances", "list", "--json"))
    assert listed[0]["paused"] is True

    assert ok(env, "resume") == "resumed all sending; 0 paused message(s) due now\n"
    assert ok(env, "resume") == "all sending was not paused\n"
    ok(env, "resume", "--campaign", "nov")
    ok(env, "resume", "--instance", "inst-a")
    assert json.loads(ok(env, "status", "--json"))["pauses"] == []


def test_bad_pause_arguments_exit_2_with_one_clear_line(env: dict[str, str]) -> None:
    unknown = run_cli(env, "pause", "--instance", "ghost")
    assert unknown.returncode == 2 and "no instance named 'ghost'" in unknown.stderr
    both = run_cli(env, "resume", "--instance", "a", "--campaign", "c")
    assert both.returncode == 2 and "not both" in both.stderr


def test_campaigns_list_and_cancel(env: dict[str, str], engine: Engine) -> None:
    assert ok(env, "campaigns", "list") == "no campaigns\n"
    with engine.begin() as conn:
        for i, state in enumerate(("queued", "waiting", "sent")):
            conn.execute(
                text(
                    "INSERT INTO messages (id, phone, text, content_hash, state, expires_at,"
                    " attempts, requeues, campaign) VALUES (gen_random_uuid(), :p, 'oi', 'h',"
                    " :s, now() + interval '1 day', 0, 0, 'nov')"
                ),
                {"p": f"55119000{i:05d}", "s": state},
            )
    assert ok(env, "campaigns", "cancel", "nov") == "campaign nov: 2 message(s) cancelled\n"
    listed = json.loads(ok(env, "campaigns", "list", "--json"))
    assert listed[0]["by_state"] == {
        "queued": 0, "waiting": 0, "sending": 0, "sent": 1, "failed": 0, "expired": 0,
        "cancelled": 2,
    }  # fmt: skip
    table = ok(env, "campaigns", "list")
    assert table.splitlines()[0].startswith("CAMPAIGN  TOTAL  QUEUED")
    assert table.splitlines()[2].split()[:2] == ["nov", "3"]
    bad = run_cli(env, "campaigns", "cancel", " ")
    assert bad.returncode == 2 and "campaign must have 1..100 characters" in bad.stderr


def test_numbers_show_and_forget(env: dict[str, str], engine: Engine) -> None:
    assert ok(env, "numbers", "show", "+55 11 90007-0007") == (
        "5511900070007: not remembered as off WhatsApp\n"
    )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO not_on_whatsapp (phone, found_at, detail) "
                "VALUES ('5511900070007', now(), 'exists false')"
            )
        )
    shown = json.loads(ok(env, "numbers", "show", "11 90007-0007", "--json"))
    assert shown["not_on_whatsapp"] is True and shown["since"] and shown["detail"] == "exists false"
    assert "not on WhatsApp since" in ok(env, "numbers", "show", "5511900070007")
    assert "forgotten" in ok(env, "numbers", "forget", "5511900070007")
    assert "was not remembered" in ok(env, "numbers", "forget", "5511900070007")
    bad = run_cli(env, "numbers", "show", "12")
    assert bad.returncode == 2
