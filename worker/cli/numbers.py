"""`zapdispatch numbers show|forget`: the numbers Evolution reported not on WhatsApp."""

from __future__ import annotations

import json
from typing import Any

import click

from worker.cli.output import BadInput
from worker.resources import resources


@click.group("numbers")
def numbers() -> None:
    """Numbers Evolution reported not on WhatsApp (remembered NOT_ON_WHATSAPP_TTL_DAYS)."""


def _digits(phone: str) -> str:
    from worker.phones import InvalidPhone, normalize_phone  # noqa: PLC0415

    try:
        return normalize_phone(phone)
    except InvalidPhone as exc:
        raise BadInput(str(exc)) from None


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
