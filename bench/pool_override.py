"""Bench-only: size the worker's SQLAlchemy pool from ZD_BENCH_POOL_SIZE (an experiment).

Loaded with `-I bench.pool_override` before the lazily built resources exist; it replaces
`make_engine` as `worker.resources` sees it. Used to check whether the default pool
(5 + 5 overflow) caps a threads pool's concurrency.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine

import worker.resources
from models.db import make_engine

_SIZE = int(os.environ.get("ZD_BENCH_POOL_SIZE", "0"))


def _sized(database_url: str, **_: Any) -> Engine:
    return make_engine(database_url, pool_size=_SIZE)


if _SIZE > 0:
    worker.resources.make_engine = _sized  # type: ignore[assignment]
