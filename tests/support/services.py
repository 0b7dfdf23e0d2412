"""Where the test and bench services live, and how each run gets its own copy of them.

Redis: one logical database per pytest session (or xdist worker) or bench run, claimed by
a key in db 0 so that no two runs flush each other's. PostgreSQL: the schema is migrated
once per session into a template database; each test that asks for a database gets a fresh
`CREATE DATABASE ... TEMPLATE ...` copy; the bench re-creates one database per run.
A missing service fails in CI (CI=true) and skips on a laptop.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[2]
ADMIN_DSN = os.environ.get("ZD_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("ZD_TEST_REDIS", "redis://127.0.0.1:6379")


def require(ok: bool, what: str) -> None:
    """Skip on a laptop, fail in CI, when a service the test needs is not there."""
    if ok:
        return
    import pytest  # noqa: PLC0415 - the bench imports this module without pytest at hand

    if os.environ.get("CI"):
        pytest.fail(f"{what} is not reachable (CI requires it)")
    pytest.skip(f"{what} is not reachable")


CLAIM_TTL_SECONDS = 6 * 3600


def claim_redis_db(
    candidates: Iterable[int] = range(1, 16),
    owner: str | None = None,
    ttl_seconds: int = CLAIM_TTL_SECONDS,
) -> int:
    """The first Redis database of `candidates` no other live run uses; db 0 holds the claims.

    Claims are keys in db 0 that expire after `ttl_seconds`, so a crashed run frees its
    database later. `owner` (default: this process id) is what the claim key holds.
    """
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0", socket_connect_timeout=2)
    wanted = list(candidates)
    for db in wanted:
        if admin.set(f"zd:test-db-claim:{db}", owner or os.getpid(), nx=True, ex=ttl_seconds):
            return db
    raise RuntimeError(f"Redis databases {wanted} are all claimed by other runs")


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


def create_database(name: str) -> str:
    """Drop and re-create the database `name`, migrated to head; returns its URL."""
    drop_database(name)
    admin_execute(f'CREATE DATABASE "{name}"')
    migrate(pg_url(name))
    return pg_url(name)


def create_template(worker_id: str) -> str:
    """A migrated template database for this session (or xdist worker); returns its name."""
    name = f"zd_test_tpl_{worker_id}_{os.getpid()}"
    create_database(name)
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
