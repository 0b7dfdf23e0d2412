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


@click.group("numbers")
def numbers() -> None:
    """Numbers Evolution reported not on WhatsApp (remembered NOT_ON_WHATSAPP_TTL_DAYS)."""


def _digits(phone: str) -> str:
    from worker.phones import InvalidPhone, normalize_phone  # noqa: PLC0415

    try:
        return normalize_phone(phone)
    except InvalidPhone as exc:
        raise ControlInputError(str(exc)) from None


def not_on_whatsapp_json(phone: str) -> dict[str, Any]:
    """`{"phone", "not_on_whatsapp", "since", "detail"}` for one number (digits); what
    `contacts show` can include."""
    res = resources()
    entry = res.not_on_whatsapp.entry(phone, res.limiter.now())
    return {
        "phone": phone,
        "not_on_whatsapp": entry is not None,
        "since": entry.found_at.isoformat() if entry else None,
        "detail": entry.detail if entry else None,
    }


@numbers.command("show")
@click.argument("phone")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def numbers_show(phone: str, as_json: bool) -> None:
    """Whether PHONE is remembered not on WhatsApp, and since when."""
    doc = not_on_whatsapp_json(_digits(phone))
    if as_json:
        click.echo(json.dumps(doc))
    elif doc["not_on_whatsapp"]:
        click.echo(f"{doc['phone']}: not on WhatsApp since {doc['since']} (not asked again)")
    else:
        click.echo(f"{doc['phone']}: not remembered as off WhatsApp")


@numbers.command("forget")
@click.argument("phone")
def numbers_forget(phone: str) -> None:
    """Forget that PHONE is not on WhatsApp: its next message asks Evolution again."""
    digits = _digits(phone)
    if resources().not_on_whatsapp.forget(digits):
        click.echo(f"{digits}: forgotten; the next message to it asks Evolution again")
    else:
        click.echo(f"{digits}: was not remembered")


COMMANDS = (pause, resume, campaigns, numbers)
