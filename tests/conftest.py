"""Shared fixtures: real Redis and PostgreSQL, isolated per test. See tests/support/services.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine, create_engine

from config import Settings
from tests.support import services
from tests.support.processes import Launcher, ServiceProcess

# Celery's in-process worker fixtures (pytest-celery 1.x needs Docker; see pyproject addopts).
pytest_plugins = ("celery.contrib.pytest",)


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database claimed for this test session (or xdist worker) alone."""
    services.require(services.redis_is_up(f"{services.REDIS_BASE}/0"), "Redis")
    db = services.claim_redis_db()
    yield f"{services.REDIS_BASE}/{db}"
    services.release_redis_db(db)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A real Redis database, flushed before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def template_db(worker_id: str) -> Iterator[str]:
    services.require(services.postgres_is_up(), "PostgreSQL at 127.0.0.1:5432")
    name = services.create_template(worker_id)
    yield name
    services.drop_database(name)


@pytest.fixture
def database_url(template_db: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test only."""
    name = services.copy_database(template_db)
    yield services.pg_url(name)
    services.drop_database(name)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_engine(database_url, pool_pre_ping=True)
    yield eng
    eng.dispose()


@pytest.fixture
def settings(database_url: str, redis_url: str) -> Settings:
    """Settings pointing at this test's database and Redis; no outside services."""
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        evolution_api_url="http://127.0.0.1:9",
        test_clock_enabled=True,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Launcher]:
    """Processes this test starts (logs under its tmp_path); stopped after it."""
    launcher = Launcher(tmp_path)
    yield launcher
    launcher.stop_all()


@pytest.fixture
def start_celery(launcher: Launcher) -> Callable[..., ServiceProcess]:
    """`start_celery(args, env, name)`: `celery -A worker ARGS`, stopped after the test."""
    return launcher.celery
