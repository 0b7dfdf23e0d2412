"""The Celery application: JSON only, late acks, one prefetched task per process.

Settings are read once, here, at import (the process's start-up); nothing reads the
environment later. `celery -A worker worker` consumes both queues below.
"""

from __future__ import annotations

import logging
import os
import ssl

from celery import Celery
from kombu import Exchange, Queue

from config import Settings, load_settings
from worker import bootstrap, threads_pool
from worker.flower_config import export_flower_env, guard_flower_options

#: Celery's default queue: a producer without this code (`send_task` by name, no routes)
#: publishes here, so the message tasks live here too.
MESSAGES_QUEUE = "celery"
MONITOR_QUEUE = "zapdispatch.monitor"

SEND_MESSAGE = "zapdispatch.send_message"
DELIVER_MESSAGE = "zapdispatch.deliver_message"
HEALTH_CHECK = "zapdispatch.health_check"
SWEEP = "zapdispatch.sweep"
#: Plans alerts from the recorded statuses at once (a webhook changed one).
EVALUATE_ALERTS = "zapdispatch.evaluate_alerts"

#: kombu's Redis transport with a fetch that cannot lose a message to a killed worker.
CRASH_SAFE_TRANSPORT = "worker.broker.transport:CrashSafeTransport"
#: Celery's consumer that sets aside (dead-letters) every message it cannot make a task of.
GUARDED_CONSUMER = "worker.broker.consumer:GuardedConsumer"


def celery_config(settings: Settings) -> dict[str, object]:
    """Every Celery setting of the project, derived from the typed settings."""
    transport = {"visibility_timeout": settings.broker_visibility_timeout_seconds}
    return {
        "broker_url": settings.redis_url,
        **broker_transport(settings.redis_url),
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_consumer": GUARDED_CONSUMER,
        # ETA tasks are held in worker memory; countdowns stay far below the visibility
        # timeout (max_countdown_seconds), longer waits are parked in PostgreSQL, and how
        # many are out at once is bounded by worker/countdowns.py (Celery 5.5 has no
        # `worker_eta_task_limit`).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_default_queue": MESSAGES_QUEUE,
        "task_queues": tuple(
            Queue(name, Exchange(name), routing_key=name)
            for name in (MESSAGES_QUEUE, MONITOR_QUEUE)
        ),
        "task_routes": {
            name: {"queue": MONITOR_QUEUE} for name in (HEALTH_CHECK, SWEEP, EVALUATE_ALERTS)
        },
        "beat_schedule": beat_schedule(settings),
        "timezone": settings.timezone,
        "enable_utc": True,
        "include": ["tasks.messages", "tasks.monitoring"],
    }


def broker_transport(redis_url: str) -> dict[str, object]:
    """Our crash-safe Redis transport (worker/broker) for `redis://` and `rediss://` URLs.

    Naming a transport class bypasses kombu's `rediss` default of not verifying the
    server's certificate; we verify it unless the URL says otherwise (`?ssl_cert_reqs=`).
    """
    scheme = redis_url.split("://", 1)[0]
    if scheme not in ("redis", "rediss"):
        return {}
    options: dict[str, object] = {"broker_transport": CRASH_SAFE_TRANSPORT}
    if scheme == "rediss":
        options["broker_use_ssl"] = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def beat_schedule(settings: Settings) -> dict[str, dict[str, object]]:
    """Per-minute health check (configurable) and the sweep that re-drives parked messages."""
    expires = settings.health_check_interval_seconds
    return {
        "health-check": {
            "task": HEALTH_CHECK,
            "schedule": settings.health_check_interval_seconds,
            "options": {"expires": expires},
        },
        "sweep": {
            "task": SWEEP,
            "schedule": settings.sweep_interval_seconds,
            "options": {"expires": settings.sweep_interval_seconds},
        },
    }


def make_app(settings: Settings) -> Celery:
    if settings.max_countdown_seconds >= settings.broker_visibility_timeout_seconds:
        raise SystemExit(
            "invalid configuration: MAX_COUNTDOWN_SECONDS must be below "
            "BROKER_VISIBILITY_TIMEOUT_SECONDS"
        )
    app = Celery("zapdispatch")
    app.conf.update(celery_config(settings))
    threads_pool.install(app)
    return app


# httpx logs every request URL at INFO; our own log lines say what matters, masked.
logging.getLogger("httpx").setLevel(logging.WARNING)

app = make_app(load_settings())

# `celery -A worker flower` reads FLOWER_BASIC_AUTH from the environment; a value set only
# in `.env` is exported here so Flower sees it too (worker/flower_config.py).
export_flower_env(load_settings(), os.environ)
# Flower without FLOWER_BASIC_AUTH listens on loopback only (worker/flower_config.py).
guard_flower_options()

# Every signal handler (resources, heartbeats, masking): worker/bootstrap.py.
bootstrap.connect()
