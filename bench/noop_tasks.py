"""A bare Celery task for the baseline: `celery -A worker worker -I bench.noop_tasks`.

Registered on the project's own app, so it runs in the very worker (same broker, pool,
concurrency, serializer, acks, prefetch, events) that runs the pipeline tasks.
"""

from __future__ import annotations

import time

from worker import app

NOOP = "bench.noop"


@app.task(name=NOOP)
def noop(*_: object, **__: object) -> None:
    """Does nothing: what is left is Celery's own cost per task."""


SLEEP = "bench.sleep"


@app.task(name=SLEEP)
def sleep(seconds: float) -> None:
    """Waits like a send to a slow Evolution, without our code: Celery's I/O baseline."""
    time.sleep(seconds)
