"""Bench-only: a `--pool=threads` worker without `worker.threads_pool`'s hub wake-up.

Loaded with `-I bench.no_hub_wakeup`; include modules are imported before the worker builds
its blueprint, so the step is gone from that worker only (the "before" of bench.compare).
"""

from __future__ import annotations

from worker import app
from worker.threads_pool import WakeHubForThreads

app.steps["worker"].discard(WakeHubForThreads)
