"""Beat jobs: one-line adapters."""

from __future__ import annotations

from worker import app
from worker.celery_app import HEALTH_CHECK, SWEEP
from worker.monitor.health import run_health_check
from worker.pipeline import pipeline
from worker.resources import resources


@app.task(name=SWEEP, ignore_result=True)
def sweep() -> None:
    """Re-drive parked, orphaned and stuck messages (see worker/sweeper.py)."""
    pipeline(app).sweeper.run()


@app.task(name=HEALTH_CHECK, ignore_result=True)
def health_check() -> None:
    """Poll every instance, record status changes, raise and resolve alerts (worker/monitor)."""
    run_health_check(resources())
