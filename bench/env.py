"""The benchmarks' own services: a `zd_bench` PostgreSQL database and one Redis database.

Both live on the shared servers of the README (127.0.0.1:5432 and :6379). The database is
dropped, re-created and migrated with alembic at the start of a run; the Redis database is
claimed the way the test suite claims its own (a key in db 0, with a TTL), so a concurrent
`pytest` never flushes it and the bench never flushes a test's database.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import Engine, text

from config import Settings

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN = os.environ.get("ZD_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("ZD_BENCH_REDIS", "redis://127.0.0.1:6379")
DATABASE = os.environ.get("ZD_BENCH_DATABASE", "zd_bench")
#: Preferred Redis database numbers, first free one wins (the tests take 1..15 from the low end).
REDIS_DBS = (14, 15, 13, 12, 11)
CLAIM_TTL_SECONDS = 3600


def pg_url(dbname: str) -> str:
    base = ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{dbname}"


def _admin(sql: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def create_database() -> str:
    """Drop and re-create the bench database, migrated to head; returns its URL."""
    _admin(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{DATABASE}"')
    url = pg_url(DATABASE)
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    return url


def claim_redis_db() -> int:
    admin = redis.Redis.from_url(f"{REDIS_BASE}/0", socket_connect_timeout=2)
    for db in REDIS_DBS:
        if admin.set(
            f"zd:test-db-claim:{db}", f"bench-{os.getpid()}", nx=True, ex=CLAIM_TTL_SECONDS
        ):
            return db
    raise RuntimeError(f"Redis databases {REDIS_DBS} are all claimed by test sessions")


def release_redis_db(db: int) -> None:
    redis.Redis.from_url(f"{REDIS_BASE}/0").delete(f"zd:test-db-claim:{db}")


@dataclass(frozen=True)
class BenchEnv:
    database_url: str
    redis_db: int

    @property
    def redis_url(self) -> str:
        return f"{REDIS_BASE}/{self.redis_db}"

    def settings(self, **overrides: Any) -> Settings:
        """Settings on the bench services; nothing read from `.env`."""
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "evolution_api_url": "http://127.0.0.1:9",
            **overrides,
        }
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def worker_env(self, **values: str) -> dict[str, str]:
        """Environment of a worker subprocess: only what the bench sets, plus PATH & co."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ZD_", "PYTEST")) and k.upper() not in _SETTINGS_NAMES
        }
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis_url,
                **values,
            }
        )
        return env

    def redis(self) -> redis.Redis[bytes]:
        return redis.Redis.from_url(self.redis_url)

    def reset(self, engine: Engine) -> None:
        """Empty every table and the Redis database (between scenarios)."""
        with engine.begin() as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                        "AND tablename <> 'alembic_version'"
                    )
                )
            ]
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        with self.redis() as client:
            client.flushdb()


_SETTINGS_NAMES = {name.upper() for name in Settings.model_fields}


def open_env() -> BenchEnv:
    return BenchEnv(create_database(), claim_redis_db())


def close_env(env: BenchEnv) -> None:
    with env.redis() as client:
        client.flushdb()
    release_redis_db(env.redis_db)
