"""`zapdispatch pause` and `resume`: hold and release all sending, one instance or one
campaign. Unknown names and bad values exit 2, as elsewhere."""

from __future__ import annotations

import json
from typing import Any

import click

from worker.cli.output import BadInput
from worker.resources import resources


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
        raise BadInput(str(exc)) from None
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
