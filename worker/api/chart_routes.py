"""`/charts/*`: the data behind the console's pictures. `/metrics` exports the same
numbers (worker/api/metrics.py), read by the same queries (models/chart_store.py).

- `GET /charts/instances`: per instance, sends per local hour over the last 24 h against
  its hourly cap, and the delivered / read share of what it sent in the last 24 h;
- `GET /charts/queue?hours=N`: queue depth by state from the health check's samples over
  the last N hours (1..48), and the messages held back now by reason;
- `GET /charts/campaigns`: per campaign (last 30 days), accepted → sent → delivered → read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from models.chart_store import Receipts
from worker.api.deps import ApiDeps
from worker.stats import hourly_series, iso, local_hour_starts

HOURS_OF_SENDS = 24
CAMPAIGN_DAYS = 30
FUNNEL_STAGES = ("accepted", "sent", "delivered", "read", "failed", "cancelled")


def share_pct(part: int, receipts: Receipts) -> float | None:
    """100 × part ÷ sent, one decimal; None before any receipt came back."""
    if receipts.sent == 0 or receipts.with_receipt == 0:
        return None
    return round(100.0 * part / receipts.sent, 1)


def instance_charts(deps: ApiDeps) -> dict[str, Any]:
    now = datetime.fromtimestamp(deps.clock(), tz=UTC)
    zone = deps.settings.zone
    starts = local_hour_starts(now, zone, HOURS_OF_SENDS)
    views = deps.instances.all()
    names = [view.name for view in views]
    per_hour = deps.charts.sends_per_hour(names, starts[0], zone.key)
    receipts = deps.charts.receipts_since(names, now - timedelta(hours=HOURS_OF_SENDS))
    rows = []
    for view in views:
        r = receipts.get(view.name, Receipts(0, 0, 0, 0))
        rows.append(
            {
                "name": view.name,
                "capacity_hour": view.hourly_cap,
                "hours": hourly_series(starts, per_hour.get(view.name, {})),
                "sent_24h": r.sent,
                "delivered_24h": r.delivered,
                "read_24h": r.read,
                "delivered_pct_24h": share_pct(r.delivered, r),
                "read_pct_24h": share_pct(r.read, r),
            }
        )
    return {"timestamp": iso(now), "instances": rows}


def campaign_funnels(deps: ApiDeps) -> list[dict[str, Any]]:
    now = datetime.fromtimestamp(deps.clock(), tz=UTC)
    return [
        {"campaign": f.campaign, **{stage: getattr(f, stage) for stage in FUNNEL_STAGES}}
        for f in deps.charts.funnels(now - timedelta(days=CAMPAIGN_DAYS))
    ]


def chart_router(deps: ApiDeps) -> APIRouter:
    router = APIRouter(prefix="/charts", tags=["charts"])

    @router.get("/instances", summary="Sends per hour over 24 h vs cap; delivered/read share")
    def instances() -> dict[str, Any]:
        return instance_charts(deps)

    @router.get("/queue", summary="Queue depth by state over the last hours; held by reason")
    def queue(hours: Annotated[int, Query(ge=1, le=48)] = 6) -> dict[str, Any]:
        now = datetime.fromtimestamp(deps.clock(), tz=UTC)
        samples = deps.charts.queue_history(now - timedelta(hours=hours))
        return {
            "timestamp": iso(now),
            "samples": [{"at": iso(s.sampled_at), **s.counts} for s in samples],
            "waiting_by_reason": deps.charts.waiting_by_reason(),
        }

    @router.get("/campaigns", summary="Per campaign: accepted → sent → delivered → read")
    def campaigns() -> dict[str, Any]:
        return {"campaigns": campaign_funnels(deps)}

    return router
