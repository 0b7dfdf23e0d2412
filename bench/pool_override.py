"""Bench-only experiments on the worker's SQLAlchemy engine, set by environment variables.

Loaded with `-I bench.pool_override`, before the worker builds its resources (lazily, or in
`worker_process_init` after the fork); it replaces `make_engine` as `worker.resources` sees
it. Without the variables nothing changes.

- ZD_BENCH_POOL_SIZE=n: pool_size = max_overflow = n (does the default 5 + 5 cap threads?)
- ZD_BENCH_PRE_PING=0: no ping on checkout (what does `pool_pre_ping` cost per message?)
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine

import worker.resources
from models.db import make_engine, make_statement_engine

_SIZE = int(os.environ.get("ZD_BENCH_POOL_SIZE", "0"))
_PRE_PING = os.environ.get("ZD_BENCH_PRE_PING", "1") != "0"


def _engine(database_url: str, **kwargs: Any) -> Engine:
    if _SIZE > 0:
        kwargs["pool_size"] = _SIZE
    engine = make_engine(database_url, **kwargs)
    engine.pool._pre_ping = _PRE_PING  # type: ignore[attr-defined]
    return engine


def _statement_engine(database_url: str, **kwargs: Any) -> Engine:
    if _SIZE > 0:
        kwargs["pool_size"] = _SIZE
    return make_statement_engine(database_url, **kwargs)


if _SIZE > 0 or not _PRE_PING:
    worker.resources.make_engine = _engine  # type: ignore[assignment]
    worker.resources.make_statement_engine = _statement_engine  # type: ignore[assignment]
