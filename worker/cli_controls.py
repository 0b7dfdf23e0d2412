"""`zapdispatch pause`, `resume` and `campaigns`: the operator's sending controls.

Kept apart from worker/cli.py (which registers these commands) so the console script's
module stays one concept per file. Unknown names and bad values exit 2, as elsewhere.
"""

from __future__ import annotations

import json
from typing import Any

import click

from worker.resources import resources


class ControlInputError(click.ClickException):
    """A clear one-line error with exit status 2."""

    exit_code = 2


def controls() -> Any:
    from models.campaign_store import CampaignStore  # noqa: PLC0415
    from worker.controls import Controls  # noqa: PLC0415 - opens resources on use

    res = resources()
    return Controls(res.pauses, res.instances, res.limiter.now, CampaignStore(res.sessions))


def _run(action: str, instance: str | None, campaign: str | None) -> dict[str, Any]:
    from worker.controls import ControlError  # noqa: PLC0415

    try:
        result: dict[str, Any] = getattr(controls(), action)(instance=instance, campaign=campaign)
    except ControlError as exc:
        raise ControlInputError(str(exc)) from None
    return result


def what(document: dict[str, Any]) -> str:
    return (
        "all sending" if document["scope"] == "all" else f"{document['scope']} {document['target']}"
    )


@click.command("pause")
@click.option("--instance", help="Pause one instance: it leaves routing.")
@click.option("--campaign", help="Pause one campaign: its messages wait.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def pause(instance: str | None, campaign: str | None, as_json: bool) -> None:
    """Pause all sending (no option), one instance or one campaign; in every worker within
    2 s. Paused messages wait (`waiting`); nothing is lost."""
    done = _run("pause", instance, campaign)
    if as_json:
        click.echo(json.dumps(done))
        return
    click.echo(f"paused {what(done)} (since {done['since']})")


@click.command("resume")
@click.option("--instance", help="Resume one instance.")
@click.option("--campaign", help="Resume one campaign.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def resume(instance: str | None, campaign: str | None, as_json: bool) -> None:
    """Resume what `pause` paused (same options); paused messages are sent on."""
    done = _run("resume", instance, campaign)
    if as_json:
        click.echo(json.dumps(done))
        return
    if not done["resumed"]:
        click.echo(f"{what(done)} was not paused")
        return
    click.echo(f"resumed {what(done)}; {done['woken']} paused message(s) due now")


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
        raise ControlInputError(str(exc)) from None
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


CAMPAIGN_STATES = ("queued", "waiting", "sending", "sent", "failed", "expired", "cancelled")


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
    table = [headers, *cells]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


COMMANDS = (pause, resume, campaigns)
