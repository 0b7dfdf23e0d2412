"""Beat jobs: one-line adapters."""

from __future__ import annotations

from worker import app
from worker.celery_app import EVALUATE_ALERTS, HEALTH_CHECK, SWEEP
from worker.composition import pipeline
from worker.monitor.health_check import AlertsBusy, evaluate_alerts, run_health_check
from worker.resources import resources


@app.task(name=SWEEP, ignore_result=True)
def sweep() -> None:
    """Re-drive parked, orphaned and stuck messages (see worker/sweeper.py)."""
    pipeline(app).sweeper.run()


@app.task(name=HEALTH_CHECK, ignore_result=True)
def health_check() -> None:
    """Poll every instance, record status changes, raise and resolve alerts (worker/monitor)."""
    run_health_check(resources())


@app.task(
    name=EVALUATE_ALERTS,
    ignore_result=True,
    autoretry_for=(AlertsBusy,),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=20,
)
def evaluate_alerts_now(migrated: dict[str, int] | None = None) -> None:
    """Open/resolve alerts from the statuses a webhook just recorded (`migrated`: contacts
    moved off newly banned numbers); retried while a health check holds the lock."""
    evaluate_alerts(resources(), migrated)
