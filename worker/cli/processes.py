"""`zapdispatch api`, `simulator` and `up`: the long-running processes. Each imports what it
serves only when run, so the other commands start without FastAPI or the simulator."""

from __future__ import annotations

import sys

import click

from config import Settings, load_settings
from worker.cli.output import BadInput


@click.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def api(host: str, port: int) -> None:
    """Serve the status API, `/metrics` and the page."""
    from worker.api import InsecureBind, serve  # noqa: PLC0415

    try:
        serve(load_settings(), host, port)
    except InsecureBind as exc:
        raise BadInput(str(exc)) from None


@click.command("simulator")
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


@click.command("up")
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
