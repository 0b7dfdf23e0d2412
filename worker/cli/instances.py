"""`zapdispatch instances ...`: register, list, tune, ban and unban WhatsApp numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from models.alert_store import AlertStore
from models.instance_store import (
    DuplicateInstance,
    InvalidInstanceName,
    UnknownInstance,
    check_instance_name,
)
from worker.bans import ban_instance, configured_channels, unban_instance
from worker.cli.output import BadInput, emit_json, table, unmasked_phone_error
from worker.evolution import EvolutionError
from worker.instance_import import ImportFileError, import_instances, read_entries
from worker.phones import InvalidPhone, normalize_phone
from worker.registration import WebhookNotConfigured, probe_and_record, register_webhook
from worker.resources import Resources, resources
from worker.stats import StatsReader


def instance_name(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """The NAME argument of `instances ...`, held to the one rule for instance names."""
    try:
        return check_instance_name(value)
    except InvalidInstanceName as exc:
        raise BadInput(f"{exc} (got {value!r})") from None


def stats_of(res: Resources) -> StatsReader:
    """The read model over this process's resources (the API's, imported late: FastAPI)."""
    from worker.api.deps import deps_from_resources  # noqa: PLC0415

    return deps_from_resources(res).stats


@click.group()
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
