"""Worker heartbeats: a dead worker process is noticed in seconds, a slow one never.

Every worker process (the consumer, and each prefork child) beats from a thread of its own
every WORKER_DEAD_AFTER_SECONDS / 3: it writes the Redis server time under its claimant
name (models/claimant.py) in the HEARTBEATS sorted set (worker/keys.py). A send that
takes long blocks its task, not this thread, so a busy process keeps beating.

A claimant silent for WORKER_DEAD_AFTER_SECONDS is dead. The sweep (worker/sweeper.py)
then releases the `sending` messages it had claimed (through the same release as stuck
sends) and restores the broker messages it had fetched but not acknowledged (the
UNACKED_OWNERS record of worker/broker/fetch.lua), then forgets it. A process that stops
cleanly forgets itself (what it held was finished or restored by Celery's own shutdown).
Times are Redis server time, one clock for every host.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import cast

import redis

from config import load_settings
from models.claimant import claimant
from worker.keys import HEARTBEATS, UNACKED_OWNERS

log = logging.getLogger("zapdispatch.heartbeat")

#: Beats per WORKER_DEAD_AFTER_SECONDS: two may be lost before a live process looks dead.
BEATS_PER_DEADLINE = 3


class Heartbeats:
    """The heartbeat records in Redis: beat, find the dead, forget."""

    def __init__(self, client: redis.Redis, dead_after_seconds: float) -> None:
        self._redis = client
        self.dead_after_seconds = dead_after_seconds

    def server_now(self) -> float:
        """The Redis server's clock, Unix seconds."""
        seconds, micros = cast(tuple[int, int], self._redis.time())
        return float(seconds) + float(micros) / 1e6

    def beat(self, name: str) -> None:
        self._redis.zadd(HEARTBEATS, {name: self.server_now()})

    def forget(self, names: Sequence[str]) -> None:
        if names:
            self._redis.zrem(HEARTBEATS, *names)

    def dead(self) -> list[str]:
        """Claimants whose last beat is older than `dead_after_seconds`."""
        cutoff = self.server_now() - self.dead_after_seconds
        return [
            _text(n)
            for n in cast(list[bytes], self._redis.zrangebyscore(HEARTBEATS, "-inf", f"({cutoff}"))
        ]

    def alive(self) -> list[str]:
        cutoff = self.server_now() - self.dead_after_seconds
        return [
            _text(n)
            for n in cast(list[bytes], self._redis.zrangebyscore(HEARTBEATS, cutoff, "+inf"))
        ]

    def held_by(self, names: Sequence[str]) -> list[str]:
        """Delivery tags of broker messages fetched, and not acknowledged, by `names`."""
        if not names:
            return []
        wanted = set(names)
        owners = cast(dict[bytes, bytes], self._redis.hgetall(UNACKED_OWNERS))
        return [_text(tag) for tag, owner in owners.items() if _text(owner) in wanted]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class HeartbeatThread(threading.Thread):
    """Beats for this process every `interval` seconds until stopped (a daemon thread)."""

    def __init__(self, heartbeats: Heartbeats, name: str) -> None:
        super().__init__(name="zapdispatch-heartbeat", daemon=True)
        self._heartbeats = heartbeats
        self.claimant = name
        self.interval = heartbeats.dead_after_seconds / BEATS_PER_DEADLINE
        self._stopped = threading.Event()

    def run(self) -> None:
        failing = False
        while True:
            try:
                self._heartbeats.beat(self.claimant)
                if failing:
                    log.info("heartbeat of %s written again", self.claimant)
                failing = False
            except redis.RedisError as exc:  # Redis down: beat again when it is back
                if not failing:
                    log.warning("heartbeat of %s not written: %s", self.claimant, exc)
                failing = True
            if self._stopped.wait(self.interval):
                return

    def stop(self) -> None:
        """Stop beating and forget this process (a clean stop is not a death)."""
        self._stopped.set()
        self.join(timeout=5)
        with contextlib.suppress(redis.RedisError):
            self._heartbeats.forget([self.claimant])


_thread: HeartbeatThread | None = None


def start() -> HeartbeatThread:
    """Start this process's heartbeat (once per process)."""
    global _thread  # noqa: PLW0603 - one heartbeat per process, by design
    name = claimant()
    if _thread is None or _thread.claimant != name or not _thread.is_alive():
        settings = load_settings()
        client = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        _thread = HeartbeatThread(Heartbeats(client, settings.worker_dead_after_seconds), name)
        _thread.start()
    return _thread


def stop() -> None:
    global _thread  # noqa: PLW0603
    if _thread is not None and _thread.claimant == claimant():
        _thread.stop()
    _thread = None
