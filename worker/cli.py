"""`zapdispatch`: the operator's command line (Click).

Every command with `--json` prints one JSON document for scripts; without it, a readable
table. Unknown names and bad values print one clear line and exit with status 2.
"""

from __future__ import annotations

import json
import sys
import unicodedata
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from config import Settings, load_settings
from models.activity_store import ActivityStore
from models.alert_store import AlertStore
from models.contact_store import ContactStore, ContactView
from models.enums import MessageState
from models.instance_store import (
    DuplicateInstance,
    InvalidInstanceName,
    UnknownInstance,
    check_instance_name,
)
from models.message_query_store import MAX_PAGE, MessageFilter, MessageQueryStore
from models.message_values import UnknownMessage
from models.views import MessageView
from worker.bans import ban_instance, configured_channels, unban_instance
from worker.broker.deadletters import DeadLetterStore
from worker.controls import pause_json
from worker.evolution import EvolutionError
from worker.instance_import import ImportFileError, import_instances, read_entries
from worker.message_json import event_json
from worker.message_json import message_json as record_json
from worker.phones import InvalidPhone, mask_id, mask_phone, normalize_phone
from worker.registration import WebhookNotConfigured, probe_and_record, register_webhook
from worker.resources import Resources, resources
from worker.stats import StatsReader, iso, message_counts

RECENT_MESSAGES = 10
TEXT_PREVIEW_CHARS = 40


class BadInput(click.ClickException):
    """A clear one-line error with exit status 2 (unknown names, bad values)."""

    exit_code = 2


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide and fullwidth characters (emoji such as 🟢 and ⛔,
    CJK) take 2, combining marks and zero-width ones (variation selectors, joiners) 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in {"Mn", "Me", "Cf"}:
            continue
        width += 2 if unicodedata.east_asian_width(ch) in {"W", "F"} else 1
    return width


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, aligned by terminal width (emoji count 2)."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(pad(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def instance_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """The NAME argument of `instances ...`, held to the one rule for instance names."""
    try:
        return check_instance_name(value)
    except InvalidInstanceName as exc:
        raise BadInput(f"{exc} (got {value!r})") from None


def unmasked_phone_error(raw: str, exc: Exception) -> BadInput:
    """A phone error as the user should read it: with what they typed (it is their own
    terminal), not the masked form logs and the database get."""
    return BadInput(str(exc).replace(repr(mask_phone(raw)), repr(raw)))


def stats_of(res: Resources) -> StatsReader:
    """The read model over this process's resources (the API's, imported late: FastAPI)."""
    from worker.api.deps import deps_from_resources  # noqa: PLC0415

    return deps_from_resources(res).stats


@click.group()
def cli() -> None:
    """zapdispatch: WhatsApp sends over a pool of Evolution API instances."""


# -- instances --------------------------------------------------------------------------
@cli.group()
def instances() -> None:
    """Register, list, tune and ban instances."""


@instances.command("add")
@click.argument("name", callback=instance_name)
@click.option("--phone", required=True, help="The instance's own number, any common format.")
@click.option("--hourly", type=click.IntRange(min=1), required=True, help="Cap, sends per hour.")
@click.option("--daily", type=click.IntRange(min=1), required=True, help="Cap, sends per day.")
def instances_add(name: str, phone: str, hourly: int, daily: int) -> None:
    """Register instance NAME, ask Evolution for its connection state at once (a connected
    number is used right away), and with PUBLIC_WEBHOOK_URL register the webhook on it."""
    res = resources()
    try:
        number = normalize_phone(phone)
        view = res.instances.add(name, number, hourly, daily)
    except InvalidPhone as exc:
        raise unmasked_phone_error(phone, exc) from None
    except DuplicateInstance as exc:
        raise BadInput(str(exc)) from None
    click.echo(f"added {view.name} ({view.phone}): {view.hourly_cap}/hour, {view.daily_cap}/day")
    probe = probe_and_record(res, name)
    status = res.instances.get(name).status.value
    if probe.error is not None:
        click.echo(f"status {status}: Evolution did not say ({probe.error}); the health check will")
    else:
        click.echo(f"status {status} (Evolution's connection state, asked now)")
    if res.settings.public_webhook_url:
        click.echo(webhook_outcome(res, name))


def webhook_outcome(res: Resources, name: str) -> str:
    try:
        register_webhook(res, name)
    except (WebhookNotConfigured, EvolutionError) as exc:
        return f"webhook NOT registered: {exc}"
    return f"webhook registered on Evolution: {res.settings.public_webhook_url}"


@instances.command("webhook")
@click.argument("name")
def instances_webhook(name: str) -> None:
    """(Re-)register this service's webhook on Evolution for instance NAME."""
    res = resources()
    try:
        res.instances.get(name)
        register_webhook(res, name)
    except (UnknownInstance, WebhookNotConfigured, EvolutionError) as exc:
        raise BadInput(str(exc)) from None
    click.echo(f"webhook registered on Evolution for {name}: {res.settings.public_webhook_url}")


@instances.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def instances_list(as_json: bool) -> None:
    """Every instance with its usage of the current hour and day."""
    res = resources()
    rows = [row.to_json() for row in stats_of(res).overview().rows]
    contacts = res.instances.contacts_assigned()
    for row in rows:
        row["contacts_assigned"] = contacts.get(row["name"], 0)
    if as_json:
        emit_json(rows)
        return
    click.echo(instance_table(rows) if rows else "no instances")


def instance_table(rows: Sequence[dict[str, Any]]) -> str:
    headers = [
        "",
        "NAME",
        "PHONE",
        "STATUS",
        "ACTIVE",
        "HOUR",
        "DAY",
        "LOAD",
        "AVAILABLE",
        "DELIVERED",
        "PAUSED",
        "WARM-UP",
        "CONTACTS",
    ]
    return table(
        headers,
        [
            [
                r["status_emoji"],
                r["name"],
                r["phone"],
                r["status"],
                "yes" if r["active"] else "no",
                f"{r['messages_hour']}/{r['capacity_hour']}",
                f"{r['messages_day']}/{r['capacity_day']}",
                f"{r['load_pct']:.1f}%",
                "yes" if r["available"] else "no",
                "-" if r.get("delivered_pct_24h") is None else f"{r['delivered_pct_24h']:.1f}%",
                "yes" if r.get("paused") else "no",
                warmup_cell(r),
                r.get("contacts_assigned", ""),
            ]
            for r in rows
        ],
    )


def warmup_cell(row: dict[str, Any]) -> str:
    """`day 2: 1/h 30/d` while warming up (the caps in force), else `-`."""
    if row.get("warmup_day") is None:
        return "-"
    return (
        f"day {row['warmup_day']}: {row['effective_hourly_cap']}/h {row['effective_daily_cap']}/d"
    )


@instances.command("set")
@click.argument("name", callback=instance_name)
@click.option("--hourly", type=click.IntRange(min=1), help="Cap, sends per hour.")
@click.option("--daily", type=click.IntRange(min=1), help="Cap, sends per day.")
@click.option("--active/--inactive", default=None, help="Take part in routing or not.")
@click.option(
    "--restart-warmup", is_flag=True, help="Start its WARMUP_SCHEDULE ramp again at day 1 today."
)
def instances_set(
    name: str, hourly: int | None, daily: int | None, active: bool | None, restart_warmup: bool
) -> None:
    """Change caps or take instance NAME in or out of routing."""
    if hourly is None and daily is None and active is None and not restart_warmup:
        raise BadInput(
            "nothing to change: give --hourly, --daily, --active, --inactive or --restart-warmup"
        )
    try:
        res = resources()
        if restart_warmup:
            res.instances.restart_warmup(name, datetime.fromtimestamp(res.limiter.now(), tz=UTC))
        view = res.instances.update(name, hourly_cap=hourly, daily_cap=daily, active=active)
    except UnknownInstance as exc:
        raise BadInput(str(exc)) from None
    click.echo(
        f"{view.name}: {view.hourly_cap}/hour, {view.daily_cap}/day, "
        f"{'active' if view.active else 'inactive'}"
    )


@instances.command("ban")
@click.argument("name", callback=instance_name)
def instances_ban(name: str) -> None:
    """Mark NAME banned and move its contacts off it (they are reassigned on their next send)."""
    try:
        result = ban_instance(
            resources().instances, name, by="zapdispatch instances ban", now=datetime.now(tz=UTC)
        )
    except UnknownInstance as exc:
        raise BadInput(str(exc)) from None
    click.echo(f"{name} banned; {result.contacts_migrated} contact(s) migrated off it")


@instances.command("import")
@click.argument("path", type=click.Path(path_type=Path))
def instances_import(path: Path) -> None:
    """Register the instances listed in a YAML file (idempotent: run it on every start).

    New names are added, registered ones get the file's caps and active flag; a phone is
    never changed. Exits 2 when the file is unusable or an entry could not be applied."""
    try:
        entries = read_entries(path)
    except ImportFileError as exc:
        raise BadInput(str(exc)) from None
    lines = import_instances(resources().instances, entries)
    for line in lines:
        click.echo(f"{line.name}: {line.outcome}" + (f" ({line.detail})" if line.detail else ""))
    errors = [line for line in lines if line.outcome == "error"]
    if errors:
        raise BadInput(f"{len(errors)} of {len(lines)} instance(s) not applied")


@instances.command("unban")
@click.argument("name")
def instances_unban(name: str) -> None:
    """Undo a ban: NAME is `disconnected` until the health check or a webhook sees it
    connected, and its open ban alert is resolved."""
    res = resources()
    try:
        result = unban_instance(
            res.instances,
            AlertStore(res.sessions),
            name,
            by="zapdispatch instances unban",
            now=datetime.now(tz=UTC),
            channels=configured_channels(res.settings),
        )
    except UnknownInstance as exc:
        raise BadInput(str(exc)) from None
    if not result.was_banned:
        click.echo(f"{name} is not banned; nothing to do")
        return
    resolved = "; its ban alert resolved" if result.alert_resolved else ""
    click.echo(f"{name} unbanned: disconnected until seen connected{resolved}")


# -- messages ---------------------------------------------------------------------------
@cli.command("send")
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


def message_json(message: MessageView) -> dict[str, Any]:
    """A message for people: phone masked, text shortened."""
    text = message.text
    return {
        "id": str(message.id),
        "state": message.state.value,
        "instance": message.instance,
        "phone": mask_phone(message.phone or ""),
        "contact_id": mask_id(message.contact_id),
        "text": text if len(text) <= TEXT_PREVIEW_CHARS else text[:TEXT_PREVIEW_CHARS] + "…",
        "attempts": message.attempts,
        "requeues": message.requeues,
        "created_at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
        "last_error": message.last_error,
    }


def status_document(res: Resources) -> dict[str, Any]:
    """Overview, message counts by state, and the most recent messages."""
    body: dict[str, Any] = stats_of(res).overview().to_json()
    contacts = res.instances.contacts_assigned()
    for row in body["instances"]:
        row["contacts_assigned"] = contacts.get(row["name"], 0)
    recent = ActivityStore(res.sessions).recent_messages(RECENT_MESSAGES)
    body["messages"] = {
        "by_state": message_counts(res.messages.count_by_state()),
        "requeues": res.messages.total_requeues(),
        "recent": [message_json(m) for m in recent],
    }
    body["dead_letters"] = DeadLetterStore(res.redis).count()
    body["pauses"] = [pause_json(e) for e in res.pauses.fresh().entries()]
    return body


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Pool status, instances, messages by state and the latest messages."""
    document = status_document(resources())
    if as_json:
        emit_json(document)
        return
    click.echo(status_text(document))


def status_text(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    counts = doc["messages"]["by_state"]
    parts = [
        f"status: {doc['status']}  ({s['online']}/{s['total_instances']} online, "
        f"{s['banned']} banned; sent today {s['sent_today']}/{s['capacity_day']}, "
        f"{s['capacity_used_pct']:.1f}% used)",
        "",
        instance_table(doc["instances"]) if doc["instances"] else "no instances",
        "",
        "messages: " + ", ".join(f"{state} {n}" for state, n in counts.items()),
        f"dead letters: {doc['dead_letters']} (zapdispatch deadletters list)",
        "",
        *pauses_lines(doc.get("pauses", [])),
        table(
            ["ID", "STATE", "INSTANCE", "PHONE", "CREATED", "SENT"],
            [
                [
                    m["id"],
                    m["state"],
                    m["instance"] or "-",
                    m["phone"],
                    m["created_at"],
                    m["sent_at"] or "-",
                ]
                for m in doc["messages"]["recent"]
            ],
        ),
    ]
    return "\n".join(parts)


# -- dead letters ------------------------------------------------------------------------
@cli.group()
def deadletters() -> None:
    """Broker messages set aside because they can never become a task."""


@deadletters.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def deadletters_list(limit: int, as_json: bool) -> None:
    """The newest dead letters: when, where from, why, and the message (phones masked)."""
    letters = [letter.to_json() for letter in DeadLetterStore(resources().redis).newest(limit)]
    if as_json:
        emit_json(letters)
        return
    if not letters:
        click.echo("no dead letters")
        return
    rows = [
        [iso(datetime.fromtimestamp(d["at"], tz=UTC)), d["source"], d["queue"], d["reason"]]
        for d in letters
    ]
    click.echo(table(["AT", "SOURCE", "QUEUE", "REASON"], rows))


@deadletters.command("purge")
def deadletters_purge() -> None:
    """Delete every dead letter."""
    click.echo(f"{DeadLetterStore(resources().redis).purge()} dead letter(s) purged")


# -- contacts -----------------------------------------------------------------------------
@cli.group()
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


def pauses_lines(pauses: Sequence[dict[str, Any]]) -> list[str]:
    """`paused: all sending since …; campaign nov since …` and a blank line, or nothing."""
    if not pauses:
        return []
    said = [
        f"{'all sending' if p['scope'] == 'all' else p['scope'] + ' ' + p['target']} "
        f"since {p['since']}"
        for p in pauses
    ]
    return ["paused: " + "; ".join(said), ""]


# -- messages: show and list -------------------------------------------------------------
@cli.group("messages")
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
        document = record_json(queries.get(wanted))
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
    rows = [record_json(m) for m in page.messages]
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


# -- processes ----------------------------------------------------------------------------
@cli.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the status API, `/metrics` and the page."""
    from worker.api import InsecureBind, serve  # noqa: PLC0415

    try:
        serve(load_settings(), host, port)
    except InsecureBind as exc:
        raise BadInput(str(exc)) from None


@cli.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8081, show_default=True)
@click.option(
    "--instances",
    "names",
    default="inst-a,inst-b,inst-c",
    show_default=True,
    help="Comma-separated instance names, all connected (`open`).",
)
@click.option(
    "--latency-ms",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Added before answering each sendText, milliseconds.",
)
def simulator(host: str, port: int, names: str, latency_ms: float) -> None:
    """Serve the Evolution API simulator."""
    from worker.simulator import SimulatorConfig, serve  # noqa: PLC0415

    instance_names = [n.strip() for n in names.split(",") if n.strip()]
    serve(host, port, SimulatorConfig(instances=instance_names, latency_ms=latency_ms))


@cli.command("up")
@click.option(
    "--api-port", type=click.IntRange(1, 65535), default=8000, show_default=True, envvar="API_PORT"
)
@click.option(
    "--flower-port",
    type=click.IntRange(1, 65535),
    default=5555,
    show_default=True,
    envvar="FLOWER_PORT",
)
@click.option(
    "--simulator-port",
    type=click.IntRange(1, 65535),
    default=8081,
    show_default=True,
    envvar="SIMULATOR_PORT",
)
def up(api_port: int, flower_port: int, simulator_port: int) -> None:
    """Run the whole stack (simulator when EVOLUTION_API_URL is unset, worker, beat, Flower,
    API) with prefixed output, until Ctrl-C or SIGTERM."""
    from worker.devstack import Ports, run  # noqa: PLC0415

    settings: Settings = load_settings()
    sys.exit(run(settings, Ports(api=api_port, flower=flower_port, simulator=simulator_port)))


def _add_controls() -> None:
    """`pause`, `resume` and `campaigns` (worker/cli_controls.py)."""
    from worker.cli_controls import COMMANDS  # noqa: PLC0415

    for command in COMMANDS:
        cli.add_command(command)


_add_controls()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="zapdispatch")


if __name__ == "__main__":
    main()
