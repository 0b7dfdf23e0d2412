"""`python -m worker.beat_check [MAX_AGE_SECONDS]`: exit 0 when the beat-scheduled health
check ran within MAX_AGE_SECONDS (default 180: three of its one-minute periods), else 1
with the reason. Docker compose's beat healthcheck: a beat that stopped ticking (or no
worker running its jobs) turns unhealthy, where a file's existence proved nothing."""

from __future__ import annotations

import sys
from typing import cast

import redis

from config import load_settings
from worker.clock import RedisClock
from worker.monitor.health_check import LAST_RUN_KEY

DEFAULT_MAX_AGE_SECONDS = 180.0


def beat_problem(client: redis.Redis, now: float, max_age_seconds: float) -> str | None:
    """None when the last health check (unix seconds in LAST_RUN_KEY) is recent enough."""
    raw = cast(bytes | None, client.get(LAST_RUN_KEY))
    if raw is None:
        return "no health check has run yet"
    age = now - float(raw)
    if age > max_age_seconds:
        return f"the last health check ran {age:.0f} s ago (more than {max_age_seconds:.0f} s)"
    return None


def main(argv: list[str]) -> int:
    max_age = float(argv[0]) if argv else DEFAULT_MAX_AGE_SECONDS
    settings = load_settings()
    client: redis.Redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        now = RedisClock(client, test_clock_enabled=settings.test_clock_enabled).now()
        problem = beat_problem(client, now, max_age)
    except redis.RedisError as exc:
        problem = f"redis unavailable: {exc}"
    finally:
        client.close()
    if problem is not None:
        print(f"beat unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
