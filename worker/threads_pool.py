"""Keep `--pool=threads` workers fetching: wake Celery's event loop often (celery/celery#6941).

Under the threads pool a task finishes in a pool thread: it acknowledges its message and
frees a prefetch slot, but nothing wakes the consumer's event loop (the hub) to fetch the
next message. The hub sleeps in poll() until its next timer, up to 2 s with task events on,
so a worker whose prefetch window is full runs `concurrency` tasks per ~2 s whatever their
length (measured in bench/: 8 threads, 5 messages/s). A repeating no-op timer bounds that
sleep to WAKE_INTERVAL_SECONDS. Prefork and solo pools are not affected and left alone.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, bootsteps
from celery.concurrency.thread import TaskPool as ThreadsTaskPool

#: Longest a freed thread waits for its next message because the hub is asleep (seconds).
WAKE_INTERVAL_SECONDS = 0.01


def _tick() -> None:
    """Nothing: firing the timer is what wakes the hub, which then refills the pool."""


class WakeHubForThreads(bootsteps.StartStopStep):  # type: ignore[misc]
    """Worker bootstep: a repeating timer on the hub, only under the threads pool."""

    requires = ("celery.worker.components:Hub",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._entry: Any = None

    def include_if(self, worker: Any) -> bool:
        pool = worker.pool_cls
        return (
            bool(worker.use_eventloop)
            and isinstance(pool, type)
            and issubclass(pool, ThreadsTaskPool)
        )

    def start(self, worker: Any) -> None:
        self._entry = worker.timer.call_repeatedly(WAKE_INTERVAL_SECONDS, _tick)

    def stop(self, worker: Any) -> None:
        if self._entry is not None:
            self._entry.cancel()
            self._entry = None


def install(app: Celery) -> None:
    app.steps["worker"].add(WakeHubForThreads)
