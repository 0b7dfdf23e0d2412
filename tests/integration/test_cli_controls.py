"""`zapdispatch pause`, `resume` and what `status` says about them, as an operator runs them."""

from __future__ import annotations

import json

from tests.integration.test_cli import env, ok
from tests.services import run_cli

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
