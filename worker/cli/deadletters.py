"""`zapdispatch deadletters list|purge`: broker messages set aside because they can never
become a task."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from worker.broker.deadletters import DeadLetterStore
from worker.cli.output import emit_json, table
from worker.resources import resources
from worker.stats import iso


@click.group()
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
