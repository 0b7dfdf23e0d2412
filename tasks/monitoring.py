"""Beat jobs: one-line adapters."""

from __future__ import annotations

from worker import app
from worker.celery_app import SWEEP
from worker.pipeline import pipeline


@app.task(name=SWEEP, ignore_result=True)
def sweep() -> None:
    """Re-drive parked, orphaned and stuck messages (see worker/sweeper.py)."""
    pipeline(app).sweeper.run()
