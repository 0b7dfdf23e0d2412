"""`GET /metrics`: Prometheus text format, read from live state on every scrape.

A custom collector on a registry of its own per app (no global state, so tests can build
many apps). A dependency that fails during a scrape sets `zapdispatch_scrape_ok` to 0
instead of failing the whole scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import cast

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from models.enums import InstanceStatus
from models.views import CircuitState
from worker import keys
from worker.api.chart_routes import FUNNEL_STAGES, campaign_funnels, instance_charts
from worker.api.deps import ApiDeps
from worker.broker.deadletters import DeadLetterStore
from worker.stats import InstanceRow, Overview, message_counts

INSTANCE = ["instance"]
log = logging.getLogger(__name__)


def _gauge(
    name: str, doc: str, rows: list[InstanceRow], value: Callable[[InstanceRow], float]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=INSTANCE)
    for row in rows:
        family.add_metric([row.view.name], value(row))
    return family


def instance_metrics(overview: Overview) -> Iterator[Metric]:
    """Sends, caps, load and availability per instance (current local hour / day)."""
    rows = overview.rows
    yield _gauge(
        "zapdispatch_instance_sent_hour", "Sends this local hour.", rows, lambda r: r.messages_hour
    )
    yield _gauge(
        "zapdispatch_instance_sent_day", "Sends this local day.", rows, lambda r: r.messages_day
    )
    yield _gauge(
        "zapdispatch_instance_hourly_cap", "Cap, sends per hour.", rows, lambda r: r.view.hourly_cap
    )
    yield _gauge(
        "zapdispatch_instance_daily_cap", "Cap, sends per day.", rows, lambda r: r.view.daily_cap
    )
    yield _gauge(
        "zapdispatch_instance_load_percent",
        "100 x max(hour/hourly cap, day/daily cap).",
        rows,
        lambda r: r.load_pct,
    )
    yield _gauge(
        "zapdispatch_instance_available",
        "1 when routing may use it now.",
        rows,
        lambda r: float(r.available),
    )
    delivered = GaugeMetricFamily(
        "zapdispatch_instance_delivered_percent",
        "Delivered / sent over the last 24 h (receipts); absent before any receipt.",
        labels=INSTANCE,
    )
    for row in rows:
        if row.delivered_pct_24h is not None:
            delivered.add_metric([row.view.name], row.delivered_pct_24h)
    yield delivered
    yield _gauge(
        "zapdispatch_instance_active",
        "1 when enabled by an operator.",
        rows,
        lambda r: float(r.view.active),
    )
    yield from policy_metrics(rows)


def policy_metrics(rows: list[InstanceRow]) -> Iterator[Metric]:
    """Warm-up and pauses per instance: the caps routing applies now."""
    yield _gauge(
        "zapdispatch_instance_effective_hourly_cap",
        "Cap in force, sends per hour (warm-up shrinks it).",
        rows,
        lambda r: r.caps.hourly_cap if r.caps else r.view.hourly_cap,
    )
    yield _gauge(
        "zapdispatch_instance_effective_daily_cap",
        "Cap in force, sends per day: min(own, WARMUP_SCHEDULE ramp).",
        rows,
        lambda r: r.caps.daily_cap if r.caps else r.view.daily_cap,
    )
    yield _gauge(
        "zapdispatch_instance_warmup_day",
        "Day of its warm-up ramp (1-based); 0 when not warming up.",
        rows,
        lambda r: float(r.caps.warmup_day or 0) if r.caps else 0.0,
    )
    yield _gauge(
        "zapdispatch_instance_paused",
        "1 when an operator paused it.",
        rows,
        lambda r: float(r.paused),
    )


def state_sets(overview: Overview) -> Iterator[Metric]:
    """Status and circuit state per instance, one series per possible value (1 = current)."""
    status = GaugeMetricFamily(
        "zapdispatch_instance_status",
        "Connection status (1 = current).",
        labels=["instance", "status"],
    )
    circuit = GaugeMetricFamily(
        "zapdispatch_instance_circuit_state",
        "Circuit breaker state (1 = current).",
        labels=["instance", "state"],
    )
    for row in overview.rows:
        for value in InstanceStatus:
            status.add_metric([row.view.name, value.value], float(row.view.status is value))
        for state in CircuitState:
            circuit.add_metric([row.view.name, state.value], float(row.circuit is state))
    yield status
    yield circuit
    pool = GaugeMetricFamily(
        "zapdispatch_pool_status", "Overall status (1 = current).", labels=["status"]
    )
    for name in ("healthy", "warning", "degraded", "critical"):
        pool.add_metric([name], float(overview.status == name))
    yield pool


def message_metrics(deps: ApiDeps) -> Iterator[Metric]:
    """Messages by state and the total of capacity requeues."""
    by_state = GaugeMetricFamily("zapdispatch_messages", "Messages by state.", labels=["state"])
    for state, count in message_counts(deps.messages.count_by_state()).items():
        by_state.add_metric([state], count)
    yield by_state
    requeues = CounterMetricFamily(
        "zapdispatch_message_requeues", "Requeues for capacity, summed over messages."
    )
    requeues.add_metric([], deps.messages.total_requeues())
    yield requeues


def webhook_metrics(deps: ApiDeps) -> Iterator[Metric]:
    """Evolution webhooks received, by what was done with them (unknown receipt ids too)."""
    family = CounterMetricFamily(
        "zapdispatch_webhooks", "Evolution webhooks received, by outcome.", labels=["outcome"]
    )
    outcomes = cast(dict[bytes, bytes], deps.redis.hgetall(keys.WEBHOOK_OUTCOMES))
    for outcome, count in sorted(outcomes.items()):
        family.add_metric([outcome.decode()], int(count))
    yield family


def chart_metrics(deps: ApiDeps) -> Iterator[Metric]:
    """The console's chart numbers (worker/api/chart_routes.py), from the same queries."""
    charts = instance_charts(deps)["instances"]
    for key, doc in (
        ("sent_24h", "Messages sent in the last 24 h."),
        ("delivered_24h", "Of those, delivered (or read)."),
        ("read_24h", "Of those, read."),
    ):
        family = GaugeMetricFamily(f"zapdispatch_instance_{key}", doc, labels=INSTANCE)
        for row in charts:
            family.add_metric([row["name"]], row[key])
        yield family
    held = GaugeMetricFamily(
        "zapdispatch_messages_held",
        "Messages waiting or requeued now, by the reason of their latest wait.",
        labels=["reason"],
    )
    for reason, count in deps.charts.waiting_by_reason().items():
        held.add_metric([reason], count)
    yield held
    funnel = GaugeMetricFamily(
        "zapdispatch_campaign_messages",
        "Per campaign (last 30 days): messages at each stage.",
        labels=["campaign", "stage"],
    )
    for row in campaign_funnels(deps):
        for stage in FUNNEL_STAGES:
            funnel.add_metric([row["campaign"], stage], row[stage])
    yield funnel


def alert_metrics(deps: ApiDeps) -> Iterator[Metric]:
    """Open alerts by kind and severity."""
    family = GaugeMetricFamily(
        "zapdispatch_alerts_open", "Open alerts.", labels=["kind", "severity"]
    )
    counts: dict[tuple[str, str], int] = {}
    for alert in deps.alerts.open_alerts():
        key = (alert.kind.value, alert.severity.value)
        counts[key] = counts.get(key, 0) + 1
    for (kind, severity), count in sorted(counts.items()):
        family.add_metric([kind, severity], count)
    yield family


def dead_letter_metrics(deps: ApiDeps) -> Iterator[Metric]:
    """Broker messages set aside as dead letters (`zapdispatch deadletters list`)."""
    family = GaugeMetricFamily(
        "zapdispatch_dead_letters", "Broker messages set aside because they can never be a task."
    )
    family.add_metric([], DeadLetterStore(deps.redis).count())
    yield family


class LiveCollector(Collector):
    """Collects every family from live state; `zapdispatch_scrape_ok` says if it all worked."""

    def __init__(self, deps: ApiDeps) -> None:
        self._deps = deps

    def collect(self) -> Iterator[Metric]:
        ok = 1.0
        try:
            families = [
                *instance_metrics(overview := self._deps.stats.overview()),
                *state_sets(overview),
                *message_metrics(self._deps),
                *alert_metrics(self._deps),
                *dead_letter_metrics(self._deps),
                *webhook_metrics(self._deps),
                *chart_metrics(self._deps),
            ]
        except Exception:  # a failed read is reported as a metric, and logged
            log.exception("metrics scrape failed")
            families, ok = [], 0.0
        yield from families
        scrape = GaugeMetricFamily("zapdispatch_scrape_ok", "1 when every read succeeded.")
        scrape.add_metric([], ok)
        yield scrape


def metrics_registry(deps: ApiDeps) -> CollectorRegistry:
    """A registry holding only the live collector of this app."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(deps))
    return registry
