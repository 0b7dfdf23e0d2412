"""Bench-only: run the worker on stock kombu's Redis fetch instead of worker/broker's.

Loaded with `-I bench.stock_fetch`, before the consumer opens its broker connection. With
ZD_BENCH_STOCK_FETCH=1 it drops `broker_transport`, so kombu picks its own Redis transport
from the URL; without it nothing changes. Lets 7.1 price the crash-safe fetch side by side.
"""

from __future__ import annotations

import os

from worker.celery_app import app

if os.environ.get("ZD_BENCH_STOCK_FETCH") == "1":
    app.conf.broker_transport = None
