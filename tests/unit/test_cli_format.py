"""The CLI's pure parts: tables, message rendering, and argument errors (exit status 2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from click.testing import CliRunner

from models.enums import MessageState
from models.views import MessageView
from worker.cli import cli, message_json, table


def test_table_aligns_columns() -> None:
    assert table(["A", "BB"], [["xxx", 1], [None, "y"]]).splitlines() == [
        "A    BB",
        "---  --",
        "xxx  1",
        "     y",
    ]


def test_message_json_masks_the_phone_and_shortens_the_text() -> None:
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
    body = message_json(message)
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
