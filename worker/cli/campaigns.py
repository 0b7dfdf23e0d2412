"""`zapdispatch campaigns list|cancel`: campaigns' messages by state, and cancelling what a
campaign has not sent."""

from __future__ import annotations

import json
from typing import Any

import click

from models.enums import MessageState
from worker.cli.controls import controls
from worker.cli.output import BadInput, table


@click.group("campaigns")
def campaigns() -> None:
    """List campaigns and cancel what they have not sent."""


@campaigns.command("cancel")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def campaigns_cancel(name: str, as_json: bool) -> None:
    """Cancel campaign NAME: its `queued` and `waiting` messages become `cancelled` and are
    never sent; one already being sent is not stopped. Tasks not yet taken by a worker are
    not messages yet: `pause --campaign NAME` first holds them as they arrive."""
    from worker.controls import ControlError  # noqa: PLC0415

    try:
        done = controls().cancel_campaign(name)
    except ControlError as exc:
        raise BadInput(str(exc)) from None
    if as_json:
        click.echo(json.dumps(done))
        return
    click.echo(f"campaign {name}: {done['cancelled']} message(s) cancelled")


@campaigns.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def campaigns_list(as_json: bool) -> None:
    """Every campaign with its messages by state (and receipts, when known)."""
    rows = controls().campaigns()
    if as_json:
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    click.echo(campaign_table(rows) if rows else "no campaigns")


#: Every message state, in life-cycle order: the table's columns.
CAMPAIGN_STATES = tuple(state.value for state in MessageState)


def campaign_table(rows: list[dict[str, Any]]) -> str:
    headers = ["CAMPAIGN", "TOTAL", *(s.upper() for s in CAMPAIGN_STATES), "RECEIPTS", "PAUSED"]
    cells = [
        [
            r["campaign"],
            str(r["total"]),
            *(str(r["by_state"][s]) for s in CAMPAIGN_STATES),
            ", ".join(f"{k} {v}" for k, v in r["receipts"].items()) or "-",
            "since " + r["paused_since"] if r["paused"] else "no",
        ]
        for r in rows
    ]
    return table(headers, cells)
