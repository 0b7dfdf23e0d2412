"""A worker process's life: every Celery signal handler of zapdispatch, connected here once.

- `worker_init` (the worker's main process: prefork's parent, or the only process of a
  threads or solo pool): its heartbeat starts, and it says once which alert channels are off.
- `worker_process_init` (each prefork child): its resources open before its first task and
  its heartbeat starts. A threads or solo worker opens its resources on its first task.
- `worker_process_shutdown` / `worker_shutdown`: the heartbeat stops; a child closes its
  resources (the services built on them go with them: `Resources.service`).
- `before_task_publish`, `after_setup_logger`, `after_setup_task_logger`: phones masked in
  Flower's argument reprs and in every log line (worker/celery_masking.py).

`connect()` is called once, by worker/celery_app.py when it builds the app; importing this
module connects nothing.
"""

from __future__ import annotations

from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    before_task_publish,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
)

from config import load_settings
from worker import heartbeat
from worker.celery_masking import _mask_published_headers, _mask_worker_logs
from worker.monitor.notifiers import announce_channels
from worker.resources import close_process_resources, open_process_resources


def init_worker(**_: Any) -> None:
    """The worker's main process is up."""
    heartbeat.start()
    announce_channels(load_settings())


def init_process(**_: Any) -> None:
    """A prefork child is up: resources first, then its heartbeat."""
    open_process_resources()
    heartbeat.start()


def shutdown_process(**_: Any) -> None:
    heartbeat.stop()
    close_process_resources()


def shutdown_worker(**_: Any) -> None:
    heartbeat.stop()


def connect() -> None:
    """Connect every handler (strong references: they live as long as the process)."""
    worker_init.connect(init_worker, weak=False)
    worker_process_init.connect(init_process, weak=False)
    worker_process_shutdown.connect(shutdown_process, weak=False)
    worker_shutdown.connect(shutdown_worker, weak=False)
    before_task_publish.connect(_mask_published_headers, weak=False)
    after_setup_logger.connect(_mask_worker_logs, weak=False)
    after_setup_task_logger.connect(_mask_worker_logs, weak=False)
