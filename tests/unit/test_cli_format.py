"""The CLI's pure parts: tables, message rendering, and argument errors (exit status 2)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from models.enums import MessageState
from models.views import MessageView
from worker.cli import cli
from worker.cli.output import display_width, table
from worker.cli.status import recent_message_json
from worker.sweeper import SweepReport, log_sweep


def test_table_aligns_columns() -> None:
    assert table(["A", "BB"], [["xxx", 1], [None, "y"]]).splitlines() == [
        "A    BB",
        "---  --",
        "xxx  1",
        "     y",
    ]


def test_recent_message_json_masks_the_phone_and_shortens_the_text() -> None:
    now = datetime(2026, 11, 23, 13, tzinfo=UTC)
    message = MessageView(
        id=uuid.UUID(int=1),
        contact_id="doctor-12345678",
        phone="5511999998888",
        text="x" * 100,
        state=MessageState.SENT,
        instance="inst-a",
        provider_message_id="p",
        attempts=1,
        requeues=0,
        idempotency_key=None,
        not_before=None,
        expires_at=now,
        created_at=now,
        sent_at=now,
        last_error=None,
    )
    body = recent_message_json(message)
    assert body["phone"] == "5511*******88"
    assert body["contact_id"] == "doctor-1…"
    assert body["text"] == "x" * 40 + "…"
    assert body["state"] == "sent" and body["sent_at"] == now.isoformat()


def test_out_of_range_caps_exit_2_before_touching_anything() -> None:
    result = CliRunner().invoke(
        cli, ["instances", "add", "a", "--phone", "1", "--hourly", "0", "--daily", "1"]
    )
    assert result.exit_code == 2 and "0 is not in the range" in result.output


def test_set_without_changes_exits_2() -> None:
    result = CliRunner().invoke(cli, ["instances", "set", "a"])
    assert result.exit_code == 2 and "nothing to change" in result.output


def test_help_lists_every_command() -> None:
    out = CliRunner().invoke(cli, ["--help"]).output
    for command in ("instances", "send", "status", "api", "simulator", "up"):
        assert command in out


def test_table_aligns_emoji_by_terminal_width() -> None:
    """🟢 and ⛔ take two columns in a terminal (⚠️ is one plus a zero-width selector)."""
    lines = table(["", "NAME"], [["🟢", "inst-a"], ["⛔", "inst-c"], ["⚠️", "x"], ["-", "y"]])
    assert lines.splitlines() == [
        "    NAME",
        "--  ------",
        "🟢  inst-a",
        "⛔  inst-c",
        "⚠️   x",
        "-   y",
    ]
    assert [display_width(c) for c in ("🟢", "⛔", "⚠️", "ab", "é")] == [2, 2, 1, 2, 1]


def test_sweep_words_a_new_redis_as_nothing_to_recover(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="zapdispatch.sweep"):
        log_sweep(SweepReport(0, 0, 0, redis_lost_data=True))
        log_sweep(SweepReport(2, 0, 3, redis_lost_data=True))
        log_sweep(SweepReport(1, 0, 0, redis_lost_data=False))  # routine: silent
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "sweep: new Redis (no sentinel key yet), nothing to recover"),
        (
            "WARNING",
            "sweep: Redis lost its data (sentinel key gone): every queued message re-driven; "
            "re-drove 0 message(s) stuck in sending and 3 queued message(s) with no task "
            "(2 parked woken as due)",
        ),
    ]
    assert "redis_lost_data" not in caplog.text
