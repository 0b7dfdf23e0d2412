"""`zapdispatch contacts show|optout|optin`: contacts, by contact id or by phone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from models.contact_store import ContactStore, ContactView
from worker.cli.output import BadInput, emit_json, table
from worker.phones import InvalidPhone, mask_id, mask_phone, normalize_phone
from worker.resources import resources
from worker.stats import iso


@click.group()
def contacts() -> None:
    """Show contacts and opt them out or back in (by contact id or by phone)."""


def contact_json(contact: ContactView) -> dict[str, Any]:
    return {  # a contact id that is its phone (the default) is masked like the phone
        "id": mask_phone(contact.id) if contact.id == contact.phone else contact.id,
        "phone": mask_phone(contact.phone),
        "preferred_instance": contact.preferred_instance,
        "preferred_since": iso(contact.preferred_since),
        "last_reply_at": iso(contact.last_reply_at),
        "opted_out": contact.opted_out,
        "opted_out_at": iso(contact.opted_out_at),
        "created_at": iso(contact.created_at),
    }


def phones_of(target: str) -> list[str]:
    """TARGET as a phone (normalized), or nothing when it is not one."""
    try:
        return [normalize_phone(target)]
    except InvalidPhone:
        return []


def contacts_named(store: ContactStore, target: str) -> list[ContactView]:
    """The contact whose id is TARGET, else every contact with TARGET as phone."""
    by_id = store.find(contact_id=target)
    return by_id or store.find(phones=phones_of(target))


@contacts.command("show")
@click.argument("target", metavar="ID|PHONE")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def contacts_show(target: str, as_json: bool) -> None:
    """The contact with id ID, or every contact with phone PHONE."""
    found = contacts_named(ContactStore(resources().sessions), target)
    if not found:
        raise BadInput(f"no contact has id or phone {mask_id(target)!r}")
    rows = [contact_json(c) for c in found]
    if as_json:
        emit_json(rows if len(rows) > 1 else rows[0])
        return
    headers = ["ID", "PHONE", "PREFERRED", "LAST REPLY", "OPTED OUT"]
    cells = [
        [
            r["id"],
            r["phone"],
            r["preferred_instance"] or "-",
            r["last_reply_at"] or "-",
            r["opted_out_at"] or "no",
        ]
        for r in rows
    ]
    click.echo(table(headers, cells))


def set_opt_out(target: str, at: datetime | None) -> str:
    """Opt the contact with id TARGET, else the phone TARGET (and every contact with it),
    out or in; says what changed."""
    store = ContactStore(resources().sessions)
    verb = "opted out" if at is not None else "opted in"
    if store.find(contact_id=target):
        store.set_contact_opted_out(target, at)
        return f"contact {target} {verb}"
    phones = phones_of(target)
    if not phones:
        raise BadInput(f"no contact has id {mask_id(target)!r}, and it is not a phone number")
    changed = store.set_opted_out(phones, at)
    return f"phone {mask_phone(phones[0])} {verb} ({changed} contact(s) with it)"


@contacts.command("optout")
@click.argument("target", metavar="ID|PHONE")
def contacts_optout(target: str) -> None:
    """Stop sending to ID|PHONE: its later messages are recorded `failed` (`opted out`)."""
    said = set_opt_out(target, datetime.now(tz=UTC))
    click.echo(f"{said}; every worker stops sending to it within 1 s")


@contacts.command("optin")
@click.argument("target", metavar="ID|PHONE")
def contacts_optin(target: str) -> None:
    """Send to ID|PHONE again (by id: its phone too; by phone: every contact with it)."""
    click.echo(set_opt_out(target, None))
