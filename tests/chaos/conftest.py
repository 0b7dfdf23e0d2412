"""Chaos fixtures: a private PostgreSQL cluster per test session (a fresh database per
test) and a private `redis-server` per test, both on spare loopback ports.

Faults are injected only on these. The schema is migrated once into a template database of
the private cluster; each test gets `CREATE DATABASE ... TEMPLATE` of it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from tests.chaos.harness import Chaos
from tests.chaos.servers import PrivatePostgres, PrivateRedis, postgres_bindir
from tests.support import services
from tests.support.processes import Launcher

TEMPLATE = "zd_chaos_template"


@pytest.fixture(scope="session")
def chaos_pg() -> Iterator[PrivatePostgres]:
    bindir = postgres_bindir()
    services.require(bindir is not None, "PostgreSQL server binaries (initdb, pg_ctl)")
    assert bindir is not None
    cluster = PrivatePostgres(bindir)
    try:
        cluster.init()
        cluster.execute(f'CREATE DATABASE "{TEMPLATE}"')
        services.migrate(cluster.url(TEMPLATE))
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def chaos_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    services.require(shutil.which("redis-server") is not None, "redis-server")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.close()


@pytest.fixture
def chaos(chaos_pg: PrivatePostgres, chaos_redis: PrivateRedis, tmp_path: Path) -> Iterator[Chaos]:
    if not chaos_pg.is_up():  # a previous test's outage must not leak into this one
        chaos_pg.start()
    name = f"zd_chaos_{uuid.uuid4().hex[:10]}"
    chaos_pg.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    url = chaos_pg.url(name)
    engine = create_engine(url, pool_pre_ping=True)
    launcher = Launcher(tmp_path)
    yield Chaos(
        pg=chaos_pg,
        database_url=url,
        redis=chaos_redis,
        engine=engine,
        start_celery=launcher.celery,
        workdir=tmp_path,
    )
    launcher.stop_all()  # before the database goes away under them
    engine.dispose()
    if chaos_pg.is_up():
        chaos_pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
