"""Where the test services live, and how tests get isolated copies of them.

Redis: one logical database per pytest-xdist worker, flushed before each test.
PostgreSQL: the schema is migrated once per session into a template database; each test
that asks for a database gets a fresh `CREATE DATABASE ... TEMPLATE ...` copy.
A missing service fails in CI (CI=true) and skips on a laptop.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("ZD_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("ZD_TEST_REDIS", "redis://127.0.0.1:6379")


def require(ok: bool, what: str) -> None:
    """Skip on a laptop, fail in CI, when a service the test needs is not there."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable (CI requires it)")
    pytest.skip(f"{what} is not reachable")


CLAIM_TTL_SECONDS = 6 * 3600


def claim_redis_db() -> int:
    """A Redis database (1..15) no other live test session uses; db 0 holds the claims.

    Claims are keys in db 0 with a TTL, so a crashed session frees its database later.
    """
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0", socket_connect_timeout=2)
    for db in range(1, 16):
        if admin.set(f"zd:test-db-claim:{db}", os.getpid(), nx=True, ex=CLAIM_TTL_SECONDS):
            return db
    raise RuntimeError("all 15 test Redis databases are claimed by other test sessions")


def release_redis_db(db: int) -> None:
    redis.Redis.from_url(f"{REDIS_BASE}/0").delete(f"zd:test-db-claim:{db}")


def pg_url(dbname: str, driver: str = "postgresql+psycopg") -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", f"{driver}://", 1)
    return f"{base}/{dbname}"


def admin_execute(sql: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def postgres_is_up() -> bool:
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def redis_is_up(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def migrate(database_url: str) -> None:
    """Run `alembic upgrade head` as the operator would."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )


def create_template(worker_id: str) -> str:
    name = f"zd_test_tpl_{worker_id}_{os.getpid()}"
    admin_execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin_execute(f'CREATE DATABASE "{name}"')
    migrate(pg_url(name))
    return name


def copy_database(template: str) -> str:
    name = f"zd_test_{uuid.uuid4().hex[:12]}"
    admin_execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return name


def drop_database(name: str) -> None:
    admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`zapdispatch ARGS` as an operator runs it, in a subprocess; never raises on exit codes."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
