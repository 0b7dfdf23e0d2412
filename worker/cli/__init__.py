"""`zapdispatch`: the operator's command line (Click), one module per command group.

Every command with `--json` prints one JSON document for scripts; without it, a readable
table. Unknown names and bad values print one clear line and exit with status 2
(`worker.cli.output.BadInput`). Importing this package loads no Celery: `send` imports the
producer when it runs, `api` and `simulator` what they serve.
"""

from __future__ import annotations

import click

from worker.cli.campaigns import campaigns
from worker.cli.contacts import contacts
from worker.cli.controls import pause, resume
from worker.cli.deadletters import deadletters
from worker.cli.instances import instances
from worker.cli.messages import messages, send
from worker.cli.numbers import numbers
from worker.cli.processes import api, simulator, up
from worker.cli.status import status

__all__ = ["cli", "main"]

COMMANDS: tuple[click.Command, ...] = (
    instances,
    send,
    status,
    deadletters,
    contacts,
    messages,
    api,
    simulator,
    up,
    pause,
    resume,
    campaigns,
    numbers,
)


@click.group()
def cli() -> None:
    """zapdispatch: WhatsApp sends over a pool of Evolution API instances."""


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="zapdispatch")
