"""A local fake of the Evolution API contract (`zapdispatch simulator`)."""

from worker.simulator.app import create_app, serve
from worker.simulator.state import SimulatorConfig

__all__ = ["SimulatorConfig", "create_app", "serve"]
