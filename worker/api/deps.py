"""What the status API reads, built once per process and passed to `create_app`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis

from config import Settings
from models.activity_store import ActivityStore
from models.alert_store import AlertStore
from models.campaign_store import CampaignStore
from models.chart_store import ChartStore
from models.contact_store import ContactStore
from models.instance_store import InstanceStore
from models.message_query_store import MessageQueryStore
from models.message_store import MessageStore
from models.receipt_store import ReceiptStore
from worker.breaker import BreakerPolicy
from worker.clock import RedisClock
from worker.controls import Controls
from worker.resources import Resources
from worker.stats import StatsReader
from worker.webhooks.service import AlertTrigger, WebhookService


@dataclass(frozen=True)
class ApiDeps:
    """Everything the routes read. Tests build it from their own resources."""

    settings: Settings
    stats: StatsReader
    messages: MessageStore
    activity: ActivityStore
    alerts: AlertStore
    redis: redis.Redis
    instances: InstanceStore
    message_queries: MessageQueryStore
    charts: ChartStore
    clock: Callable[[], float]  # unix seconds: the limiter's clock (a test clock in tests)
    #: Set when WEBHOOK_TOKEN is (the webhook routes exist only then).
    webhooks: WebhookService | None = None
    receipts: ReceiptStore | None = None
    controls: Controls | None = None  # pause/resume (worker/api/controls.py)


def deps_from_resources(res: Resources) -> ApiDeps:
    """The API's view of this process's resources (the same stores and limiter as routing)."""
    activity = ActivityStore(res.sessions)
    receipts = ReceiptStore(res.sessions, res.statements)
    stats = StatsReader(
        res.instances,
        activity,
        res.limiter,
        BreakerPolicy.from_settings(res.settings),
        zone=res.settings.zone,
        warning_pct=res.settings.capacity_alert_pct,
        deliveries=receipts,
        pauses=res.pauses,
        warmup=res.settings.warmup_ramp,
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
        controls=Controls(res.pauses, res.instances, res.limiter.now, CampaignStore(res.sessions)),
        webhooks=webhook_service(res, celery_alert_trigger)
        if res.settings.webhook_secret
        else None,
        receipts=receipts,
    )


def celery_alert_trigger(migrated: Mapping[str, int]) -> None:
    """Publish the alert pass to the workers (`zapdispatch.evaluate_alerts`). The Celery
    app is built on the first webhook that changes a status, not when the API starts."""
    from worker.celery_app import EVALUATE_ALERTS, app  # noqa: PLC0415 - Celery only when used

    app.send_task(EVALUATE_ALERTS, kwargs={"migrated": dict(migrated)})


def webhook_service(res: Resources, alerts: AlertTrigger) -> WebhookService:
    """The webhook handler over this process's resources; `alerts` schedules the alert pass."""
    return WebhookService(
        res.settings,
        instances=res.instances,
        receipts=ReceiptStore(res.sessions, res.statements),
        contacts=ContactStore(res.sessions),
        client=res.redis,
        clock=RedisClock(res.redis, test_clock_enabled=res.settings.test_clock_enabled),
        alerts=alerts,
    )
