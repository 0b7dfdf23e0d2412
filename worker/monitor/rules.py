"""Alert policy, pure: which conditions hold now, and what to do about the open alerts.

The alert table, as this project reads it:

| kind             | condition (active instances only)       | severity | channels            |
|------------------|-----------------------------------------|----------|---------------------|
| instance_offline | status connecting or disconnected       | error    | log, Slack          |
| instance_banned  | status banned                           | critical | log, Slack, email ¹ |
| capacity_high    | load_pct > capacity_alert_pct           | warning  | log, Slack          |
| all_offline      | instances exist, none online            | critical | log, Slack ²        |
| circuit_open     | consecutive send failures ≥ threshold   | error    | log, Slack          |
| not_delivering   | accepting but not delivering ³          | error    | log, Slack          |
| sending_paused   | an operator paused all sending          | warning  | log, Slack          |
| evolution_licence| Evolution answers 503 LICENSE_REQUIRED ⁴| critical | log, Slack          |

¹ email when the ban alert opens; reminders and resolution go to Slack only.
² urgent: the Slack message mentions <!channel>.
³ at least `undelivered_min_sends` sends in the delivery window (`Snapshot.deliveries`: the
  last UNDELIVERED_WINDOW_MINUTES but the newest UNDELIVERED_GRACE_MINUTES) and none of them
  delivered, while another instance's sends in the same window were: Evolution said
  `PENDING`, WhatsApp never delivered (the usual first sign of a ban). When no instance has
  delivery receipts (webhooks off or lost) nothing is concluded.
⁴ the licence gate of Evolution 2.4 (`licence.py`): one alert about the server, while no
  instance's status changes because of it and no breaker counts it.

"Online" counts deliverability, not just Evolution's word: connected, active, and its
circuit breaker not open (`worker.breaker.is_online`). Deactivating an instance resolves its
alerts. An alert opens when its condition starts, is re-sent at most every `repeat_seconds` while
it lasts (never while an earlier notification of it is still pending), and resolves when
the condition clears. All times are unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from models.enums import (
    POOL_SUBJECT,
    AlertKind,
    AlertSeverity,
    Channel,
    InstanceStatus,
    NotificationEvent,
    status_emoji,
)
from models.receipt_store import DeliveryCounts
from models.views import AlertText, AlertView, CircuitState, InstanceView
from worker.breaker import BreakerPolicy, is_online
from worker.phones import mask_phone

_SEVERITY_RANK = {s: i for i, s in enumerate(AlertSeverity)}


@dataclass(frozen=True, slots=True)
class MonitorPolicy:
    """Thresholds: percent of capacity, the circuit breaker, seconds."""

    capacity_alert_pct: float = 80.0
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    repeat_seconds: float = 3600.0
    undelivered_min_sends: int = 5


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one health check saw: instances after its status changes, loads in percent,
    and contacts migrated off instances it found banned."""

    now: float
    instances: Sequence[InstanceView]
    load_pct: Mapping[str, float] = field(default_factory=dict)
    migrated: Mapping[str, int] = field(default_factory=dict)
    deliveries: Mapping[str, DeliveryCounts] = field(default_factory=dict)
    all_paused_since: float | None = None  # unix seconds; None: sending is not all paused
    licence_required_since: float | None = None  # unix seconds; None: no licence gate seen


@dataclass(frozen=True, slots=True)
class Condition:
    """An alert condition that holds now."""

    kind: AlertKind
    subject: str
    severity: AlertSeverity
    text: AlertText

    @property
    def key(self) -> tuple[AlertKind, str]:
        return (self.kind, self.subject)


@dataclass(frozen=True, slots=True)
class Open:
    condition: Condition


@dataclass(frozen=True, slots=True)
class Remind:
    alert: AlertView
    condition: Condition


@dataclass(frozen=True, slots=True)
class Resolve:
    alert: AlertView
    text: AlertText


Transition = Open | Remind | Resolve


def at_least(severity: AlertSeverity, floor: AlertSeverity) -> bool:
    return _SEVERITY_RANK[severity] >= _SEVERITY_RANK[floor]


def conditions(snapshot: Snapshot, policy: MonitorPolicy) -> list[Condition]:
    """Every alert condition that holds in `snapshot`."""
    found: list[Condition] = []
    delivering = any(c.delivered for c in snapshot.deliveries.values())
    for view in snapshot.instances:
        if view.active:
            found.extend(_instance_conditions(view, snapshot, policy))
        if view.active and delivering and view.status is not InstanceStatus.BANNED:
            found.extend(_not_delivering(view, snapshot.deliveries.get(view.name), policy))
    pool = [
        c for c in (_all_offline(snapshot, policy), _all_paused(snapshot), _licence(snapshot)) if c
    ]
    return found + pool


def _instance_conditions(
    view: InstanceView, snapshot: Snapshot, policy: MonitorPolicy
) -> list[Condition]:
    if view.status is InstanceStatus.BANNED:
        return [_banned(view, snapshot.migrated.get(view.name))]
    found = [] if view.connected else [_offline(view)]
    load = snapshot.load_pct.get(view.name, 0.0)
    if load > policy.capacity_alert_pct:
        found.append(_capacity(view, load, policy))
    if view.consecutive_failures >= policy.breaker.failure_threshold:
        found.append(_failing(view, policy.breaker.circuit(view, snapshot.now), policy))
    return found


def _offline(view: InstanceView) -> Condition:
    why = f" ({view.status_reason})" if view.status_reason else ""
    return Condition(
        AlertKind.INSTANCE_OFFLINE,
        view.name,
        AlertSeverity.ERROR,
        AlertText(
            f"Instance {view.name} offline",
            f"WhatsApp instance '{view.name}' is {status_emoji(view.status)} {view.status}{why}. "
            "Check its session (QR code).",
        ),
    )


def _banned(view: InstanceView, migrated: int | None) -> Condition:
    moved = (
        f" {migrated} contacts were moved off it; each gets a new number on its next message."
        if migrated is not None
        else ""
    )
    return Condition(
        AlertKind.INSTANCE_BANNED,
        view.name,
        AlertSeverity.CRITICAL,
        AlertText(
            f"Instance {view.name} BANNED",
            f"Instance '{view.name}' ({mask_phone(view.phone)}) was banned by WhatsApp "
            f"({view.status_reason or 'reason unknown'}).{moved}",
        ),
    )


def _capacity(view: InstanceView, load: float, policy: MonitorPolicy) -> Condition:
    return Condition(
        AlertKind.CAPACITY_HIGH,
        view.name,
        AlertSeverity.WARNING,
        AlertText(
            f"High capacity: {view.name}",
            f"Instance '{view.name}' is at {load:.0f}% of its capacity "
            f"(alert above {policy.capacity_alert_pct:.0f}%).",
        ),
    )


def _failing(view: InstanceView, circuit: CircuitState, policy: MonitorPolicy) -> Condition:
    return Condition(
        AlertKind.CIRCUIT_OPEN,
        view.name,
        AlertSeverity.ERROR,
        AlertText(
            f"Send failures on {view.name}",
            f"Instance '{view.name}' failed {view.consecutive_failures} sends in a row "
            f"(threshold {policy.breaker.failure_threshold}); circuit {circuit}: it is out of "
            "routing until a trial send succeeds.",
        ),
    )


def _not_delivering(
    view: InstanceView, counts: DeliveryCounts | None, policy: MonitorPolicy
) -> list[Condition]:
    if counts is None or counts.sent < policy.undelivered_min_sends or counts.delivered:
        return []
    return [
        Condition(
            AlertKind.NOT_DELIVERING,
            view.name,
            AlertSeverity.ERROR,
            AlertText(
                f"Instance {view.name} accepting but not delivering",
                f"Instance '{view.name}' ({mask_phone(view.phone)}) had {counts.sent} sends "
                "accepted by Evolution with no delivery receipt, while other numbers' were "
                "delivered. This is often the first sign of a ban: check the number.",
            ),
        )
    ]


def _all_offline(snapshot: Snapshot, policy: MonitorPolicy) -> Condition | None:
    total = len(snapshot.instances)
    circuit = policy.breaker.circuit
    if total == 0 or any(is_online(v, circuit(v, snapshot.now)) for v in snapshot.instances):
        return None
    return Condition(
        AlertKind.ALL_OFFLINE,
        POOL_SUBJECT,
        AlertSeverity.CRITICAL,
        AlertText(
            "SYSTEM CRITICAL: no instance online",
            f"None of the {total} WhatsApp instances can send. Messages wait until one is back.",
        ),
    )


def _all_paused(snapshot: Snapshot) -> Condition | None:
    since = snapshot.all_paused_since
    if since is None:
        return None
    hours = max(0.0, snapshot.now - since) / 3600
    return Condition(
        AlertKind.SENDING_PAUSED,
        POOL_SUBJECT,
        AlertSeverity.WARNING,
        AlertText(
            "All sending is paused",
            f"An operator paused all sending {hours:.1f} h ago: messages wait, none is sent. "
            "`zapdispatch resume` sends them on.",
        ),
    )


def _licence(snapshot: Snapshot) -> Condition | None:
    since = snapshot.licence_required_since
    if since is None:
        return None
    minutes = max(0.0, snapshot.now - since) / 60
    return Condition(
        AlertKind.EVOLUTION_LICENCE,
        POOL_SUBJECT,
        AlertSeverity.CRITICAL,
        AlertText(
            "Evolution requires a licence",
            f"Evolution has answered every call with 503 LICENSE_REQUIRED for {minutes:.0f} "
            "min: the server is not activated, so no number can send. Messages wait (none "
            "fails for it). Activate it on Evolution's manager (/manager) or set a valid "
            "licensing key in its AUTHENTICATION_API_KEY.",
        ),
    )


def plan(
    holding: Sequence[Condition],
    open_alerts: Sequence[AlertView],
    snapshot: Snapshot,
    policy: MonitorPolicy,
) -> list[Transition]:
    """Open new conditions, remind lasting ones when due, resolve the ones that cleared."""
    by_key = {(a.kind, a.subject): a for a in open_alerts}
    steps: list[Transition] = []
    for condition in holding:
        alert = by_key.pop(condition.key, None)
        if alert is None:
            steps.append(Open(condition))
        elif reminder_due(alert, snapshot.now, policy.repeat_seconds):
            steps.append(Remind(alert, condition))
    names = {v.name: v for v in snapshot.instances}
    steps.extend(Resolve(a, resolved_text(a, names.get(a.subject))) for a in by_key.values())
    return steps


def reminder_due(alert: AlertView, now: float, repeat_seconds: float) -> bool:
    """At most one reminder per `repeat_seconds`, and none while a notification is pending."""
    return alert.pending == 0 and now - alert.last_notified_at.timestamp() >= repeat_seconds


def resolved_text(alert: AlertView, view: InstanceView | None) -> AlertText:
    if alert.kind is AlertKind.SENDING_PAUSED:
        now_is = "sending was resumed"
    elif alert.kind is AlertKind.EVOLUTION_LICENCE:
        now_is = "Evolution answers again (no licence gate)"
    elif alert.subject == POOL_SUBJECT:
        now_is = "at least one instance is online again"
    elif view is None:
        now_is = f"instance '{alert.subject}' was removed"
    elif not view.active:
        now_is = f"instance '{alert.subject}' was deactivated"
    elif alert.kind is AlertKind.NOT_DELIVERING:
        now_is = f"instance '{alert.subject}' has delivery receipts again"
    else:
        now_is = f"instance '{alert.subject}' is now {status_emoji(view.status)} {view.status}"
    return AlertText(f"Resolved: {alert.title}", f"Cleared: {now_is}.")


def channels_for(
    kind: AlertKind, severity: AlertSeverity, event: NotificationEvent
) -> tuple[Channel, ...]:
    """Slack for warning and above; email for bans, when they open (reminders stay on Slack)."""
    slack = (Channel.SLACK,) if at_least(severity, AlertSeverity.WARNING) else ()
    email = (
        (Channel.EMAIL,)
        if kind is AlertKind.INSTANCE_BANNED and event is NotificationEvent.OPENED
        else ()
    )
    return slack + email


def urgent(kind: AlertKind, event: NotificationEvent) -> bool:
    """Urgent notifications mention the whole Slack channel."""
    return kind is AlertKind.ALL_OFFLINE and event is not NotificationEvent.RESOLVED
