"""The benchmarks' own services: a `zd_bench` PostgreSQL database and one Redis database.

Both live on the shared servers of the README (127.0.0.1:5432 and :6379; ZD_TEST_PG_ADMIN and
ZD_TEST_REDIS move them, as for the tests: tests/support/services.py). The database is
dropped, re-created and migrated with alembic at the start of a run; the Redis database is
claimed the way the test suite claims its own (a key in db 0, with a TTL), so a concurrent
`pytest` never flushes it and the bench never flushes a test's database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import Engine, text

from config import Settings
from tests.support.services import (
    REDIS_BASE,
    ROOT,
    claim_redis_db,
    create_database,
    release_redis_db,
)

__all__ = ["ROOT", "BenchEnv", "close_env", "open_env"]

DATABASE = os.environ.get("ZD_BENCH_DATABASE", "zd_bench")
#: Preferred Redis database numbers, first free one wins (the tests take 1..15 from the low end).
REDIS_DBS = (14, 15, 13, 12, 11)
CLAIM_TTL_SECONDS = 3600


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

    def redis(self) -> redis.Redis:
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
    """Drop, re-create and migrate the bench database; claim a Redis database."""
    owner = f"bench-{os.getpid()}"
    return BenchEnv(create_database(DATABASE), claim_redis_db(REDIS_DBS, owner, CLAIM_TTL_SECONDS))


def close_env(env: BenchEnv) -> None:
    with env.redis() as client:
        client.flushdb()
    release_redis_db(env.redis_db)
