"""Time one health check of N instances of which some never answer connectionState.

    .venv/bin/python bench/health_check.py                 # 100 instances, 20 hanging
    .venv/bin/python bench/health_check.py -n 1000 --hung 200

Needs PostgreSQL and Redis on 127.0.0.1 (a scratch database is created and dropped; the
Redis database given by --redis-db is used for the lock and counters only). Starts the
Evolution simulator and a fake Slack in this process. In the simulator a hanging instance
also hangs fetchInstances, so the check falls back to concurrent connectionState probes:
the figure is hedge + one probe timeout, plus the database and Slack work of the alerts
(each instance that stops answering is marked disconnected and alerts once).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from config import Settings  # noqa: E402
from models.alert_store import AlertStore  # noqa: E402
from models.enums import InstanceStatus  # noqa: E402
from tests.fakes.slack_server import running_fake_slack  # noqa: E402
from tests.simulator_server import running_simulator  # noqa: E402
from tests.support import services  # noqa: E402
from worker import keys  # noqa: E402
from worker.clock import SystemClock  # noqa: E402
from worker.monitor.alert_manager import AlertManager  # noqa: E402
from worker.monitor.health_check import (  # noqa: E402
    HealthMonitor,
    HealthReport,
    evolution_factory,
    policy_from,
)
from worker.monitor.notifiers import build_notifiers  # noqa: E402
from worker.monitor.poll import PollPolicy  # noqa: E402
from worker.resources import build_resources  # noqa: E402


def main() -> None:
    args = parse_args()
    logging.disable(logging.CRITICAL)  # one [ALERT] line per hung instance otherwise
    database = f"zd_bench_health_{uuid.uuid4().hex[:8]}"
    services.admin_execute(f'CREATE DATABASE "{database}"')
    try:
        services.migrate(services.pg_url(database))
        bench(args, services.pg_url(database))
    finally:
        services.drop_database(database)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--instances", type=int, default=100)
    parser.add_argument("--hung", type=int, default=20, help="instances that never answer")
    parser.add_argument("--timeout", type=float, default=10.0, help="probe timeout, seconds")
    parser.add_argument("--hedge", type=float, default=1.0, help="fetchInstances head start, s")
    parser.add_argument("--redis-db", type=int, default=15)
    return parser.parse_args()


def bench(args: argparse.Namespace, database_url: str) -> None:
    names = [f"inst-{i:04d}" for i in range(args.instances)]
    with (
        running_simulator(names, hang_seconds=args.timeout * 3) as sim,
        running_fake_slack() as slack,
    ):
        settings = Settings(
            database_url=database_url,
            redis_url=f"redis://127.0.0.1:6379/{args.redis_db}",
            evolution_api_url=sim.url,
            evolution_timeout_seconds=args.timeout,
            slack_bot_token=slack.token,
            slack_api_url=slack.base_url,
            _env_file=None,
        )
        res = build_resources(settings)
        for name in names:
            res.instances.add(name, "5511999998888", 60, 500, status=InstanceStatus.CONNECTED)
        for name in names[: args.hung]:
            sim.configure_instance(name, hang_connection_state=True)
        client: redis.Redis = res.redis
        client.delete(keys.lock("health"))
        poll = PollPolicy(args.timeout, args.hedge)
        monitor = HealthMonitor(
            policy=policy_from(settings),
            instances=res.instances,
            alerts=AlertManager(AlertStore(res.sessions), build_notifiers(settings)),
            evolution=evolution_factory(settings, poll),
            limiter=res.limiter,
            client=client,
            clock=SystemClock(),
            poll=poll,
        )
        print(
            f"{args.instances} instances, {args.hung} hanging, probe timeout "
            f"{args.timeout} s, hedge {args.hedge} s (pid {os.getpid()})"
        )
        for label in ("first run (changes + alerts)", "second run (steady state)"):
            started = time.perf_counter()
            report = monitor.run()
            show(label, time.perf_counter() - started, report, len(slack.messages))
        res.close()


def show(label: str, seconds: float, report: HealthReport, slack_messages: int) -> None:
    print(
        f"  {label}: {seconds:.2f} s total, poll {report.poll_seconds:.2f} s via "
        f"{report.mode}; {report.online} online, {len(report.changes)} status changes, "
        f"{report.alerts.opened} alerts opened, {slack_messages} Slack messages so far"
    )


if __name__ == "__main__":
    main()
