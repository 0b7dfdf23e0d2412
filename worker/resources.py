"""Connections built once per worker process (ichnaea's habit) and handed to plain classes.

In a prefork worker, `worker_process_init` opens them in each child (the handlers are
connected by worker/celery_app.py, which owns every Celery signal handler: this module loads
no Celery); in thread/gevent/solo pools and other processes (API, CLI) they are opened
lazily on first use. Tests build their own `Resources` and install them.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import httpx
import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from config import Settings, load_settings
from models.db import (
    SESSION_MAX_OVERFLOW,
    SESSION_POOL_SIZE,
    make_engine,
    make_session_factory,
    make_statement_engine,
)
from models.instance_store import InstanceStore
from models.message_store import MessageStore
from models.pause_store import PauseStore
from models.policy_store import PolicyStore
from models.sweep_store import SweepStore
from worker import keys
from worker.evolution import EvolutionClient
from worker.limiter import RedisLimiter, SpacingPolicy
from worker.not_on_whatsapp import NotOnWhatsAppMemory
from worker.pauses import PauseBoard

_S = TypeVar("_S")

#: How long a worker routes on its last read of the instances table (seconds): one SELECT of
#: every instance per message cost more than the rest of routing at 1,000 instances (bench/).
ROUTING_SNAPSHOT_SECONDS = 1.0
#: How often a worker reads the routing version (seconds): a status change a webhook or the
#: health check announces reaches its routing within this (bench/: negligible at 10 reads/s).
ROUTING_VERSION_CHECK_SECONDS = 0.1


@dataclass
class Resources:
    settings: Settings
    engine: Engine
    statements: Engine  # autocommit, for the message store's hot statements
    sessions: sessionmaker[Session]
    redis: redis.Redis
    evolution: EvolutionClient
    limiter: RedisLimiter
    instances: InstanceStore
    messages: MessageStore
    sweeps: SweepStore
    pauses: PauseBoard
    policy: PolicyStore
    not_on_whatsapp: NotOnWhatsAppMemory
    #: Services built on these resources (the pipeline, the monitor), one of each: they are
    #: replaced with the resources, never kept past them.
    _services: dict[str, object] = field(default_factory=dict, repr=False)
    _services_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def service(self, name: str, build: Callable[[], _S]) -> _S:
        """The service `name` built on these resources, built by `build` on first use."""
        with self._services_lock:
            if name not in self._services:
                self._services[name] = build()
            return cast(_S, self._services[name])

    def close(self) -> None:
        self.evolution.close()
        self.redis.close()
        self.engine.dispose()
        self.statements.dispose()


def spacing_policy(settings: Settings) -> SpacingPolicy:
    return SpacingPolicy(
        recipient_min_gap_seconds=settings.recipient_min_gap_seconds,
        instance_min_interval_seconds=settings.instance_min_interval_seconds,
        instance_interval_jitter_seconds=settings.instance_interval_jitter_seconds,
    )


def evolution_timeout(settings: Settings) -> httpx.Timeout:
    """EVOLUTION_TIMEOUT_SECONDS per read/write/pool wait, EVOLUTION_CONNECT_TIMEOUT_SECONDS
    to connect."""
    return httpx.Timeout(
        settings.evolution_timeout_seconds, connect=settings.evolution_connect_timeout_seconds
    )


def build_resources(settings: Settings, *, evolution: EvolutionClient | None = None) -> Resources:
    """Open every connection the workers use; `evolution` may be injected (tests)."""
    engine = make_engine(
        settings.database_url, pool_size=SESSION_POOL_SIZE, max_overflow=SESSION_MAX_OVERFLOW
    )
    statements = make_statement_engine(settings.database_url)
    sessions = make_session_factory(engine)
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )
    api_key = settings.evolution_api_key.get_secret_value() if settings.evolution_api_key else None
    evolution = evolution or EvolutionClient(
        settings.evolution_api_url, api_key, timeout=evolution_timeout(settings)
    )
    messages = MessageStore(sessions, statements)
    return Resources(
        settings=settings,
        engine=engine,
        statements=statements,
        sessions=sessions,
        redis=client,
        evolution=evolution,
        limiter=RedisLimiter(
            client,
            settings.zone,
            spacing_policy(settings),
            test_clock_enabled=settings.test_clock_enabled,
            counters=messages.spent_since,
        ),
        instances=InstanceStore(
            sessions,
            snapshot_seconds=ROUTING_SNAPSHOT_SECONDS,
            version=functools.partial(client.get, keys.ROUTING_VERSION),
            version_check_seconds=ROUTING_VERSION_CHECK_SECONDS,
        ),
        messages=messages,
        sweeps=SweepStore(sessions),
        pauses=PauseBoard(PauseStore(sessions), client),
        policy=PolicyStore(sessions),
        not_on_whatsapp=NotOnWhatsAppMemory(
            PolicyStore(sessions), client, settings.not_on_whatsapp_ttl_days
        ),
    )


_lock = threading.Lock()
_current: Resources | None = None


def resources() -> Resources:
    """This process's resources, opened on first use."""
    global _current  # noqa: PLW0603 - one set of connections per process, by design
    with _lock:
        if _current is None:
            _current = build_resources(load_settings())
        return _current


def install(res: Resources | None) -> Resources | None:
    """Replace this process's resources (tests); returns the previous ones."""
    global _current
    with _lock:
        previous, _current = _current, res
        return previous


def open_process_resources(**_: Any) -> None:
    """`worker_process_init`: open this process's resources before its first task."""
    resources()


def close_process_resources(**_: Any) -> None:
    """`worker_process_shutdown`: close this process's connections."""
    previous = install(None)
    if previous is not None:
        previous.close()
