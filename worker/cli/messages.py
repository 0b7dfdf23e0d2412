"""`zapdispatch send` and `zapdispatch messages show|list`: queue a message, find messages
and see what happened to each."""

from __future__ import annotations

import uuid

import click

from models.enums import MessageState
from models.message_query_store import MAX_PAGE, MessageFilter, MessageQueryStore
from models.message_values import UnknownMessage
from worker.cli.output import BadInput, emit_json, table, unmasked_phone_error
from worker.message_json import event_json, message_json
from worker.resources import resources


@click.command("send")
@click.argument("phone")
@click.argument("text")
@click.option("--contact", "contact_id", help="Stickiness key (defaults to the phone).")
def send(phone: str, text: str, contact_id: str | None) -> None:
    """Queue TEXT for PHONE; prints the message id."""
    from tasks import enqueue_message  # noqa: PLC0415 - needs the Celery app and resources

    try:
        message_id = enqueue_message(phone=phone, text=text, contact_id=contact_id)
    except ValueError as exc:
        raise unmasked_phone_error(phone, exc) from None
    click.echo(str(message_id))


@click.group("messages")
def messages() -> None:
    """Find messages and see what happened to each."""


def _message_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BadInput(f"not a message id: {value!r} (a UUID, as `send` printed it)") from None


@messages.command("show")
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def messages_show(message_id: str, as_json: bool) -> None:
    """One message (phone masked) and its timeline: accepted, waits, attempts, sent,
    receipts."""
    queries = MessageQueryStore(resources().sessions)
    wanted = _message_id(message_id)
    try:
        document = message_json(queries.get(wanted))
        events = [event_json(e) for e in queries.timeline(wanted)]
    except UnknownMessage:
        raise BadInput(f"no message {message_id}") from None
    if as_json:
        emit_json({**document, "timeline": events})
        return
    width = max(len(key) for key in document)
    lines = [f"{key.ljust(width)}  {'-' if v is None else v}" for key, v in document.items()]
    lines += ["", "timeline:"]
    lines += [
        "  ".join(
            part
            for part in (
                e["at"],
                e["kind"],
                f"on {e['instance']}" if e["instance"] else "",
                e["reason"] or "",
                f"until {e['until']}" if e["until"] else "",
            )
            if part
        )
        for e in events
    ]
    click.echo("\n".join(lines))


@messages.command("list")
@click.option("--state", type=click.Choice([s.value for s in MessageState]))
@click.option("--contact", "contact_id", help="Only this contact id.")
@click.option("--campaign", help="Only this campaign.")
@click.option("--instance", help="Only messages on this instance.")
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=20, show_default=True)
@click.option("--before", help="Older than this message id (the previous page's last).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def messages_list(
    state: str | None,
    contact_id: str | None,
    campaign: str | None,
    instance: str | None,
    limit: int,
    before: str | None,
    as_json: bool,
) -> None:
    """Messages newest first (phones masked)."""
    where = MessageFilter(
        MessageState(state) if state else None,
        contact_id,
        campaign,
        instance,
        before=_message_id(before) if before else None,
        limit=limit,
    )
    page = MessageQueryStore(resources().sessions).page(where)
    rows = [message_json(m) for m in page.messages]
    next_before = str(page.next_before) if page.next_before else None
    if as_json:
        emit_json({"messages": rows, "next_before": next_before})
        return
    if not rows:
        click.echo("no messages")
        return
    headers = ["ID", "STATE", "INSTANCE", "CONTACT", "PHONE", "CAMPAIGN", "RECEIPT", "CREATED"]
    keys = ["id", "state", "instance", "contact_id", "phone", "campaign", "receipt", "created_at"]
    click.echo(table(headers, [[m[k] if m[k] is not None else "-" for k in keys] for m in rows]))
    if next_before:
        click.echo(f"\nmore: --before {next_before}")
