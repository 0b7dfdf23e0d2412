"""The health check end to end in-process: Evolution simulator, real PostgreSQL and Redis,
a fake Slack Web API and an SMTP sink. Time is a FixedClock (plus the Redis test clock
that the limiter reads); nothing sleeps."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from sqlalchemy import Engine, insert, select

from config import Settings
from models.alert_store import AlertStore
from models.enums import AlertKind, AlertSeverity, Channel, InstanceStatus, Receipt
from models.message_store import NewMessage
from models.receipt_store import ReceiptStore
from models.tables import Contact, InstanceEvent
from models.views import AlertText, to_datetime
from tests.concurrency import run_on_threads
from tests.fakes.slack_server import FakeSlack, running_fake_slack
from tests.fakes.smtp_sink import SmtpSink, running_smtp_sink
from tests.simulator_server import SimulatorHandle, running_simulator
from worker.api.deps import webhook_service
from worker.clock import FixedClock, set_test_clock
from worker.evolution import AsyncEvolutionClient
from worker.limiter import Candidate
from worker.monitor import notifiers as notifiers_module
from worker.monitor.alert_manager import AlertManager, Applied
from worker.monitor.health_check import HealthMonitor, HealthReport, policy_from
from worker.monitor.notifiers import (
    EmailNotifier,
    Notifier,
    SlackNotifier,
    build_notifiers,
    parse_smtp_url,
    slack_client,
    slack_retry_handlers,
)
from worker.monitor.poll import PollMode, PollPolicy
from worker.monitor.states import NOT_LOADED_REASON
from worker.resources import Resources, build_resources
from worker.webhooks.events import parse_envelope

#: 2026-11-23 10:00:00 in São Paulo (13:00 UTC): a Monday morning.
T0 = 1_795_914_000.0
HOUR = 3600.0


@dataclass
class World:
    res: Resources
    sim: SimulatorHandle
    slack: FakeSlack
    smtp: SmtpSink
    clock: FixedClock
    redis: redis.Redis
    poll: PollPolicy
    monitor: HealthMonitor | None = None

    def add(self, name: str, *, hourly: int = 100, daily: int = 1000) -> None:
        """Register an instance (open in the simulator, connected in the database)."""
        self.sim.configure_instance(name, state="open")
        self.res.instances.add(
            name, "5511999998888", hourly, daily, status=InstanceStatus.CONNECTED
        )

    def notifiers(self) -> dict[Channel, Notifier]:
        quick = slack_retry_handlers(interval=FixedValueRetryIntervalCalculator(0.01))
        slack = slack_client(self.slack.token, self.slack.base_url, retry_handlers=quick)
        return {
            Channel.SLACK: SlackNotifier(slack, "#alerts"),
            Channel.EMAIL: EmailNotifier(parse_smtp_url(self.smtp.url), ["ops@example.com"]),
        }

    def fresh_monitor(
        self, deliveries: ReceiptStore | None = None, api_key: str | None = None
    ) -> HealthMonitor:
        """A monitor built from nothing but the settings: what a restarted worker has
        (`api_key`: another key than the simulator's)."""
        sim = self.sim
        key = api_key or sim.api_key
        return HealthMonitor(
            policy=policy_from(self.res.settings),
            instances=self.res.instances,
            alerts=AlertManager(AlertStore(self.res.sessions), self.notifiers()),
            evolution=lambda: AsyncEvolutionClient(sim.url, key, timeout=httpx.Timeout(5.0)),
            limiter=self.res.limiter,
            client=self.redis,
            clock=self.clock,
            poll=self.poll,
            deliveries=deliveries,
        )

    def run(self) -> HealthReport:
        if self.monitor is None:
            self.monitor = self.fresh_monitor()
        return self.monitor.run()

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        set_test_clock(self.redis, self.clock.now())

    def slack_texts(self) -> list[str]:
        return self.slack.texts()


@pytest.fixture
def world(settings: Settings, redis_client: redis.Redis) -> Iterator[World]:
    with running_simulator([]) as sim, running_fake_slack() as slack, running_smtp_sink() as smtp:
        res = build_resources(settings.model_copy(update={"evolution_api_url": sim.url}))
        set_test_clock(redis_client, T0)
        try:
            yield World(
                res,
                sim,
                slack,
                smtp,
                FixedClock(T0),
                redis_client,
                PollPolicy(timeout_seconds=1.0, hedge_seconds=0.2),
            )
        finally:
            res.close()


def alerts_of(world: World) -> list[tuple[str, str, bool]]:
    """(kind, subject, resolved) of every alert, oldest first."""
    rows = AlertStore(world.res.sessions).recent()
    return [(a.kind.value, a.subject, a.resolved_at is not None) for a in reversed(rows)]


def with_text(texts: list[str], needle: str) -> list[str]:
    return [t for t in texts if needle in t]


# --- each row of the alert table: fires once, reminds after the interval, resolves -------


def test_offline_fires_once_reminds_and_resolves(world: World, engine: Engine) -> None:
    world.add("a")
    world.add("b")
    assert world.run().alerts.opened == 0 and world.slack_texts() == []

    world.sim.configure_instance("b", state="close", disconnection_reason=401)
    report = world.run()
    assert [(c.instance, c.old, c.new) for c in report.changes] == [
        ("b", InstanceStatus.CONNECTED, InstanceStatus.DISCONNECTED)
    ]
    assert report.mode is PollMode.FETCH
    assert len(with_text(world.slack_texts(), "🔴 *Instance b offline*")) == 1
    assert "logged out (401)" in world.slack_texts()[0]

    world.advance(HOUR - 1)
    world.run()
    assert len(world.slack_texts()) == 1  # no reminder before the interval
    world.advance(1)
    world.run()
    assert len(with_text(world.slack_texts(), "*Still open: Instance b offline*")) == 1

    world.sim.configure_instance("b", state="open")
    world.run()
    assert len(with_text(world.slack_texts(), "✅ *Resolved: Instance b offline*")) == 1
    assert "🟢 connected" in world.slack_texts()[-1]
    assert alerts_of(world) == [("instance_offline", "b", True)]
    with engine.connect() as conn:
        events = conn.execute(
            select(
                InstanceEvent.old_status, InstanceEvent.new_status, InstanceEvent.reason
            ).order_by(InstanceEvent.id)
        ).all()
    assert [(e[0], e[1]) for e in events] == [
        ("connected", "disconnected"),
        ("disconnected", "connected"),
    ]
    assert "401" in (events[0][2] or "")


def test_ban_migrates_contacts_and_emails(world: World, engine: Engine) -> None:
    world.add("a")
    world.add("b")
    with engine.begin() as conn:
        conn.execute(
            insert(Contact),
            [
                {"id": f"doc-{i}", "phone": "5511999990000", "preferred_instance": "b"}
                for i in range(3)
            ]
            + [{"id": "doc-a", "phone": "5511999990001", "preferred_instance": "a"}],
        )
    world.sim.configure_instance("b", state="close", disconnection_reason=403)
    report = world.run()

    assert report.migrated == {"b": 3}
    assert world.res.instances.get("b").status is InstanceStatus.BANNED
    with engine.connect() as conn:
        prefs = dict(conn.execute(select(Contact.id, Contact.preferred_instance)).tuples().all())
    assert prefs == {"doc-0": None, "doc-1": None, "doc-2": None, "doc-a": "a"}
    banned = with_text(world.slack_texts(), "🚨 *Instance b BANNED*")
    assert len(banned) == 1 and "3 contacts" in banned[0] and "5511999998888" not in banned[0]
    assert world.smtp.subjects() == ["[zapdispatch] CRITICAL: Instance b BANNED"]
    assert alerts_of(world) == [("instance_banned", "b", False)]  # not also "offline"

    world.sim.configure_instance("b", state="open")  # banned is sticky
    world.advance(HOUR)
    world.run()
    assert world.res.instances.get("b").status is InstanceStatus.BANNED
    assert len(with_text(world.slack_texts(), "Still open: Instance b BANNED")) == 1
    assert len(world.smtp.messages) == 1  # reminders stay on Slack

    world.res.instances.update("b", active=False)  # the operator takes it out
    world.run()
    assert len(with_text(world.slack_texts(), "Resolved: Instance b BANNED")) == 1
    assert "deactivated" in world.slack_texts()[-1]


def test_capacity_above_threshold(world: World) -> None:
    world.add("a", hourly=100, daily=10)
    world.add("b")
    for n in range(9):  # 9 of 10 a day: 90 %
        world.res.limiter.reserve([Candidate("a", 100, 10)], phone=f"55119999{n:05d}")
    world.run()
    assert len(with_text(world.slack_texts(), "⚠️ *High capacity: a*")) == 1
    assert "90%" in world.slack_texts()[0]
    world.run()
    world.advance(HOUR)  # 11:00, same local day: still 90 %
    world.run()
    assert len(with_text(world.slack_texts(), "Still open: High capacity: a")) == 1
    world.advance(14 * HOUR)  # past local midnight: a new day
    world.run()
    assert len(with_text(world.slack_texts(), "Resolved: High capacity: a")) == 1
    assert len(world.slack_texts()) == 3


def test_all_offline_is_urgent_and_resolves(world: World) -> None:
    world.add("a")
    world.add("b")
    for name in ("a", "b"):
        world.sim.configure_instance(name, state="connecting")
    report = world.run()
    assert report.online == 0
    urgent = with_text(world.slack_texts(), "SYSTEM CRITICAL")
    assert len(urgent) == 1 and urgent[0].startswith("<!channel> 🚨")
    world.sim.configure_instance("a", state="open")
    world.run()
    assert len(with_text(world.slack_texts(), "✅ *Resolved: SYSTEM CRITICAL")) == 1
    assert ("all_offline", "", True) in alerts_of(world)


def test_open_breaker_alerts_counts_offline_and_resolves(world: World) -> None:
    world.add("a")
    world.add("b")
    for _ in range(5):
        world.res.instances.record_send_failure("a", to_datetime(T0), threshold=5)
    world.sim.configure_instance("b", state="close")
    report = world.run()
    assert report.online == 0  # "a" says open, but its breaker is open
    assert len(with_text(world.slack_texts(), "🔴 *Send failures on a*")) == 1
    assert len(with_text(world.slack_texts(), "SYSTEM CRITICAL")) == 1
    world.res.instances.record_send_success("a", to_datetime(T0 + 10))
    world.advance(10)
    world.run()
    assert len(with_text(world.slack_texts(), "Resolved: Send failures on a")) == 1
    assert len(with_text(world.slack_texts(), "Resolved: SYSTEM CRITICAL")) == 1


def test_unknown_to_evolution_is_disconnected(world: World) -> None:
    world.add("a")
    world.res.instances.add("ghost", "5511999998888", 10, 100, status=InstanceStatus.CONNECTED)
    world.run()
    ghost = world.res.instances.get("ghost")
    assert (ghost.status, ghost.status_reason) == (
        InstanceStatus.DISCONNECTED,
        "unknown to Evolution",
    )
    assert len(with_text(world.slack_texts(), "Instance ghost offline")) == 1


# --- Evolution's contract as its source has it ------------------------------------------


def test_a_stale_open_row_in_fetch_instances_does_not_hide_a_reconnect(world: World) -> None:
    """fetchInstances' rows are database values, `open` while a session auto-reconnects:
    connectionState (live) wins."""
    world.add("a")
    world.add("b")
    world.sim.configure_instance("b", state="connecting", db_state="open")
    report = world.run()
    assert report.mode is PollMode.FETCH
    assert world.res.instances.get("b").status is InstanceStatus.CONNECTING
    assert len(with_text(world.slack_texts(), "Instance b offline")) == 1


def test_an_instance_not_loaded_in_evolution_is_disconnected_with_its_reason(
    world: World,
) -> None:
    world.add("a")
    world.add("b")
    world.sim.configure_instance("b", loaded=False)
    world.run()
    b = world.res.instances.get("b")
    assert (b.status, b.status_reason) == (InstanceStatus.DISCONNECTED, NOT_LOADED_REASON)
    assert len(with_text(world.slack_texts(), "Instance b offline")) == 1


def test_absent_from_an_instance_keys_listing_is_not_unknown(world: World) -> None:
    """With an instance's own key fetchInstances lists that key's instances only: "c" is
    asked with connectionState, which refuses the key (401), and is not "unknown"."""
    world.sim.configure(api_key="global-key")
    for name in ("a", "b", "c"):
        world.add(name)
    for name in ("a", "b"):
        world.sim.configure_instance(name, token="shared-token")
    world.monitor = world.fresh_monitor(api_key="shared-token")
    report = world.run()
    assert report.mode is PollMode.FETCH
    assert [world.res.instances.get(n).status for n in ("a", "b")] == [InstanceStatus.CONNECTED] * 2
    reason = world.res.instances.get("c").status_reason or ""
    assert "401" in reason and reason != "unknown to Evolution"


def test_the_licence_gate_is_one_alert_and_changes_no_status(world: World) -> None:
    """Evolution 2.4 not activated: every call answers 503 LICENSE_REQUIRED. One critical
    alert about the server, reminded and resolved like the others; no instance goes
    offline for it, and an alert pass between polls (a webhook's) does not resolve it."""
    world.add("a")
    world.add("b")
    world.sim.configure(license_required=True)
    report = world.run()
    assert report.changes == () and report.online == 2
    texts = world.slack_texts()
    assert len(texts) == 1 and "Evolution requires a licence" in texts[0]
    assert alerts_of(world) == [("evolution_licence", "", False)]
    assert world.monitor is not None and world.monitor.evaluate_alerts() == Applied()
    world.advance(HOUR)
    world.run()
    assert len(with_text(world.slack_texts(), "*Still open: Evolution requires a licence*")) == 1
    assert [world.res.instances.get(n).status for n in ("a", "b")] == [InstanceStatus.CONNECTED] * 2
    world.sim.configure(license_required=False)
    world.run()
    assert len(with_text(world.slack_texts(), "✅ *Resolved: Evolution requires a licence*")) == 1
    assert alerts_of(world) == [("evolution_licence", "", True)]


# --- no spam, restarts, channels down -----------------------------------------------------


def test_restart_neither_repeats_nor_forgets(world: World) -> None:
    world.add("a")
    world.add("b")
    world.sim.configure_instance("b", state="close")
    world.run()
    world.monitor = None  # a new process
    world.advance(HOUR / 2)
    world.run()
    assert len(world.slack_texts()) == 1
    world.monitor = None
    world.advance(HOUR / 2)
    world.run()
    assert len(with_text(world.slack_texts(), "Still open: Instance b offline")) == 1


@pytest.mark.parametrize("outage", ["http_500", "reset"])
def test_slack_down_does_not_crash_and_delivers_next_run(world: World, outage: str) -> None:
    world.add("a")
    world.add("b")
    world.sim.configure_instance("b", state="close")
    world.slack.mode = outage
    report = world.run()
    assert report.ran and report.alerts.opened == 1
    assert report.notifications.failed == 1 and report.notifications.down == (Channel.SLACK,)
    assert world.slack.messages == []
    assert alerts_of(world) == [("instance_offline", "b", False)]

    world.slack.mode = "ok"
    report = world.run()
    assert report.notifications.sent == 1 and report.alerts.opened == 0
    assert len(with_text(world.slack_texts(), "Instance b offline")) == 1
    world.run()
    assert len(world.slack_texts()) == 1


def test_slack_rate_limit_is_retried_by_the_sdk(world: World) -> None:
    world.add("a")
    world.sim.configure_instance("a", state="close")
    world.slack.rate_limit_next(1)
    report = world.run()
    assert report.notifications.failed == 0
    assert len(world.slack_texts()) == 2  # offline + all offline, both after one 429


def test_smtp_down_keeps_email_pending(world: World) -> None:
    world.add("a")
    world.add("b")
    world.smtp.refuse = True
    world.sim.configure_instance("b", state="close", disconnection_reason=403)
    report = world.run()
    assert report.notifications.down == (Channel.EMAIL,)
    assert len(with_text(world.slack_texts(), "BANNED")) == 1
    world.smtp.refuse = False
    world.run()
    assert world.smtp.subjects() == ["[zapdispatch] CRITICAL: Instance b BANNED"]
    assert len(with_text(world.slack_texts(), "BANNED")) == 1


def test_overlapping_runs_alert_once(world: World) -> None:
    world.add("a")
    world.add("b")
    world.sim.configure_instance("b", state="close")
    world.sim.configure_instance("a", hang_connection_state=True)  # each run takes ~1 s
    monitors = [world.fresh_monitor(), world.fresh_monitor()]
    reports: list[HealthReport] = []
    start = threading.Barrier(2)

    def run(monitor: HealthMonitor) -> None:
        start.wait()
        reports.append(monitor.run())

    run_on_threads(run, [(m,) for m in monitors], timeout_seconds=30)
    assert sorted(r.ran for r in reports) == [False, True]
    # One post about b (a hung probe may take a down with it: then one post names both).
    offline = with_text(world.slack_texts(), "offline*")
    assert len(offline) == 1 and "'b'" in offline[0]
    assert [a for a in alerts_of(world) if a[1] == "b"] == [("instance_offline", "b", False)]


def test_store_opens_one_alert_per_condition_even_when_racing(world: World) -> None:
    store = AlertStore(world.res.sessions)
    results: list[object] = []
    start = threading.Barrier(8)

    def open_it() -> None:
        start.wait()
        results.append(
            store.open(
                AlertKind.CAPACITY_HIGH,
                "a",
                AlertSeverity.WARNING,
                AlertText("t", "b"),
                now=to_datetime(T0),
                channels=[Channel.SLACK],
            )
        )

    run_on_threads(open_it, [()] * 8, timeout_seconds=10)
    assert sum(r is not None for r in results) == 1
    assert len(store.pending()) == 1


def test_no_slack_configured_logs_and_records_only(
    world: World, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.add("a")
    world.sim.configure_instance("a", state="close")
    monkeypatch.setattr(notifiers_module, "_announced", False)  # a fresh process
    with caplog.at_level("WARNING"):
        notifiers = build_notifiers(world.res.settings)
        build_notifiers(world.res.settings)  # e.g. a monitor rebuilt: says nothing new
    assert notifiers == {}
    assert sum("Slack is not configured" in r.message for r in caplog.records) == 1
    sim = world.sim
    monitor = HealthMonitor(
        policy=policy_from(world.res.settings),
        instances=world.res.instances,
        alerts=AlertManager(AlertStore(world.res.sessions), notifiers),
        evolution=lambda: AsyncEvolutionClient(sim.url, None),
        limiter=world.res.limiter,
        client=world.redis,
        clock=world.clock,
        poll=world.poll,
    )
    with caplog.at_level("ERROR", logger="zapdispatch.alerts"):
        report = monitor.run()
    assert report.alerts.opened == 2 and report.notifications.sent == 0
    assert any("[ALERT] Instance a offline" in r.message for r in caplog.records)
    assert any(r.levelname == "CRITICAL" and "SYSTEM CRITICAL" in r.message for r in caplog.records)
    assert AlertStore(world.res.sessions).pending() == []
    assert world.slack.messages == []


def test_run_is_recorded_in_redis(world: World) -> None:
    world.add("a")
    world.run()
    world.run()
    assert int(world.redis.get("zd:monitor:health:runs") or 0) == 2
    assert float(world.redis.get("zd:monitor:health:last_run") or 0) == T0


def test_a_ban_whose_migration_never_ran_is_migrated_by_the_next_check(
    world: World, engine: Engine
) -> None:
    """A ban recorded without its migration (it failed, or another path set it): the next
    health check moves the contacts off."""
    world.add("a")
    world.add("b")
    world.res.instances.set_status("b", InstanceStatus.BANNED, "403", to_datetime(0))
    with engine.begin() as conn:
        conn.execute(
            insert(Contact),
            [{"id": "doc", "phone": "5511999990000", "preferred_instance": "b"}],
        )
    world.sim.configure_instance("b", state="close", disconnection_reason=403)
    report = world.run()
    assert report.migrated == {"b": 1}
    with engine.connect() as conn:
        assert conn.execute(select(Contact.preferred_instance)).scalar_one() is None


# --- the same incident seen by a webhook and then by the poll: one alert ------------------


def webhook_hooks(world: World) -> Any:
    """A webhook service whose alert pass runs this world's monitor in-line."""
    if world.monitor is None:
        world.monitor = world.fresh_monitor()
    monitor = world.monitor
    service = webhook_service(world.res, monitor.evaluate_alerts)

    def post(data: dict[str, Any]) -> str:
        body = {"event": "connection.update", "instance": "b", "data": data}
        return service.handle(parse_envelope(body)).value

    return post


def test_a_webhook_raises_the_alert_and_the_poll_does_not_repeat_it(world: World) -> None:
    world.add("a")
    world.add("b")
    world.run()
    post = webhook_hooks(world)

    assert post({"instance": "b", "state": "close", "statusReason": 401}) == "status_changed"
    assert world.res.instances.get("b").status is InstanceStatus.DISCONNECTED
    assert len(with_text(world.slack_texts(), "Instance b offline")) == 1

    world.sim.configure_instance("b", state="close", disconnection_reason=401)
    world.advance(60)
    report = world.run()  # the poll sees it a minute later: no change, no second alert
    assert report.changes == () and report.alerts.opened == 0
    assert len(with_text(world.slack_texts(), "Instance b offline")) == 1
    assert alerts_of(world) == [("instance_offline", "b", False)]

    world.sim.configure_instance("b", state="open")
    assert post({"instance": "b", "state": "open", "statusReason": 200}) == "status_changed"
    assert alerts_of(world) == [("instance_offline", "b", True)]
    assert len(with_text(world.slack_texts(), "Resolved: Instance b offline")) == 1


def test_a_webhook_ban_alerts_once_with_the_migrated_count(world: World, engine: Engine) -> None:
    world.add("a")
    world.add("b")
    with engine.begin() as conn:
        conn.execute(
            insert(Contact).values(id="doc", phone="5511999998888", preferred_instance="b")
        )
    world.run()
    post = webhook_hooks(world)
    post({"instance": "b", "state": "close", "statusReason": 403})
    assert alerts_of(world) == [("instance_banned", "b", False)]
    assert "1 contacts were moved off it" in with_text(world.slack_texts(), "BANNED")[0]
    assert len(world.smtp.messages) == 1
    world.sim.configure_instance("b", state="close", disconnection_reason=403)
    world.advance(60)
    assert world.run().alerts.opened == 0 and len(world.smtp.messages) == 1


def test_a_webhook_during_a_poll_is_not_undone_by_it(world: World) -> None:
    """The poll read `open` before the webhook said `close`: the newer observation stands."""
    world.add("a")
    world.add("b")
    world.run()
    post = webhook_hooks(world)
    world.advance(10)
    post({"instance": "b", "state": "close", "statusReason": 401})
    world.clock.value = T0 + 5  # a poll that started before the webhook arrived
    set_test_clock(world.redis, T0 + 5)
    world.sim.configure_instance("b", state="open")
    assert world.run().changes == ()
    assert world.res.instances.get("b").status is InstanceStatus.DISCONNECTED


# --- accepting but not delivering (receipts from webhooks) --------------------------------


def sent_at(world: World, instance: str, provider_id: str, at: float) -> None:
    """A message recorded sent on `instance` at `at` (unix seconds) with `provider_id`."""
    new = NewMessage(
        id=uuid.uuid4(),
        contact_id=f"doc-{provider_id}",
        phone="5511999998888",
        text="oi",
        content_hash=uuid.uuid4().hex,
        idempotency_key=None,
        expires_at=to_datetime(at + 86400),
        created_at=to_datetime(at - 1),
    )
    world.res.messages.accept(new)
    world.res.messages.claim(
        new.id, instance, contact_id=new.contact_id, seen_preference=None, now=to_datetime(at)
    )
    assert world.res.messages.mark_sent(new.id, provider_id, to_datetime(at))


def test_accepting_but_not_delivering_alerts_once_and_resolves(world: World) -> None:
    world.add("a")
    world.add("b")
    world.monitor = world.fresh_monitor(deliveries=ReceiptStore(world.res.sessions))
    receipts = ReceiptStore(world.res.sessions)
    for i in range(5):
        sent_at(world, "a", f"A{i}", T0 + i)
        sent_at(world, "b", f"B{i}", T0 + i)
        receipts.record(f"B{i}", Receipt.DELIVERED, to_datetime(T0 + 10))
    world.advance(60)
    assert world.run().alerts.opened == 0  # too fresh: within the grace period
    world.advance(120)
    assert world.run().alerts.opened == 1
    assert alerts_of(world) == [("not_delivering", "a", False)]
    assert len(with_text(world.slack_texts(), "accepting but not delivering")) == 1
    world.advance(60)
    assert world.run().alerts.opened == 0
    assert len(with_text(world.slack_texts(), "accepting but not delivering")) == 1

    receipts.record("A3", Receipt.DELIVERED, to_datetime(world.clock.now()))
    world.advance(60)
    assert world.run().alerts.resolved == 1
    assert alerts_of(world) == [("not_delivering", "a", True)]
    assert len(with_text(world.slack_texts(), "delivery receipts again")) == 1
