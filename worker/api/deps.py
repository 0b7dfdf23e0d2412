"""What the status API reads, built once per process and passed to `create_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from config import Settings
from models.activity_store import ActivityStore
from models.alert_store import AlertStore
from models.chart_store import ChartStore
from models.instance_store import InstanceStore
from models.message_query_store import MessageQueryStore
from models.message_store import MessageStore
from worker.resources import Resources
from worker.routing import BreakerPolicy
from worker.stats import StatsReader


@dataclass(frozen=True)
class ApiDeps:
    """Everything the routes read. Tests build it from their own resources."""

    settings: Settings
    stats: StatsReader
    messages: MessageStore
    activity: ActivityStore
    alerts: AlertStore
    redis: redis.Redis[Any]
    instances: InstanceStore
    message_queries: MessageQueryStore
    charts: ChartStore
    clock: Callable[[], float]  # unix seconds: the limiter's clock (a test clock in tests)


def breaker_policy(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(settings.circuit_failure_threshold, settings.circuit_cooldown_seconds)


def deps_from_resources(res: Resources) -> ApiDeps:
    """The API's view of this process's resources (the same stores and limiter as routing)."""
    activity = ActivityStore(res.sessions)
    stats = StatsReader(
        res.instances,
        activity,
        res.limiter,
        breaker_policy(res.settings),
        zone=res.settings.zone,
        warning_pct=res.settings.capacity_alert_pct,
    )
    return ApiDeps(
        settings=res.settings,
        stats=stats,
        messages=res.messages,
        activity=activity,
        alerts=AlertStore(res.sessions),
        redis=res.redis,
        instances=res.instances,
        message_queries=MessageQueryStore(res.sessions),
        charts=ChartStore(res.sessions),
        clock=res.limiter.now,
    )
