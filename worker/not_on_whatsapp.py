"""Numbers Evolution reported not on WhatsApp, remembered NOT_ON_WHATSAPP_TTL_DAYS.

Each ask is a ban risk, so a later message to such a number is recorded `failed` at once,
without asking Evolution again. PostgreSQL holds the memory (`not_on_whatsapp`); each
process keeps a copy of it, checked against two Redis counters (one MGET) at most once per
`check_seconds`: when numbers were added it reads the rows found since its newest one (less
LOAD_OVERLAP_SECONDS), when one was forgotten it reloads the whole copy. So the hot path
costs no round trip, and a number found by one worker is known to every worker within
`check_seconds`. A TTL of 0 turns the memory off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import cast

import redis

from models.policy_store import NotOnWhatsAppView, PolicyStore
from models.views import to_datetime
from worker import keys
from worker.phones import mask_phone

log = logging.getLogger("zapdispatch.not_on_whatsapp")

CHECK_SECONDS = 1.0
#: An incremental load re-reads rows this much older than the newest it holds (seconds):
#: two workers stamping finds a moment apart may commit out of order.
LOAD_OVERLAP_SECONDS = 300.0


class NotOnWhatsAppMemory:
    def __init__(
        self,
        store: PolicyStore,
        client: redis.Redis,
        ttl_days: int,
        *,
        check_seconds: float = CHECK_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._redis = client
        self._ttl = timedelta(days=ttl_days)
        self._check_seconds = check_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._copy: dict[str, datetime] = {}
        self._versions: list[bytes | None] | None = None
        self._checked_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self._ttl > timedelta(0)

    def known_since(self, phone: str, now: float) -> datetime | None:
        """When `phone` was found not on WhatsApp, if that is within the TTL at `now`
        (unix seconds); None otherwise."""
        if not self.enabled or not phone:
            return None
        oldest = to_datetime(now) - self._ttl
        self._refresh(oldest)
        found = self._copy.get(phone)
        return found if found is not None and found >= oldest else None

    def remember(self, phone: str, now: float, detail: str | None) -> None:
        """Evolution just said `phone` is not on WhatsApp: remember it, tell other processes."""
        if not self.enabled:
            return
        at = to_datetime(now)
        self._store.remember_not_on_whatsapp(phone, at, (detail or "")[:500] or None)
        self._redis.incr(keys.NOT_ON_WHATSAPP_VERSION)
        with self._lock:
            self._copy[phone] = at
        log.warning("remembering %s as not on WhatsApp", mask_phone(phone))

    def forget(self, phone: str) -> bool:
        """Clear the memory of `phone` (it may be asked again); True when there was one."""
        forgotten = self._store.forget_not_on_whatsapp(phone)
        self._redis.incr(keys.NOT_ON_WHATSAPP_FORGETS)
        with self._lock:
            self._copy.pop(phone, None)
            self._checked_at = None
        return forgotten

    def entry(self, phone: str, now: float) -> NotOnWhatsAppView | None:
        """The stored memory of `phone` within the TTL, read from PostgreSQL (for people)."""
        return self._store.not_on_whatsapp(phone, to_datetime(now) - self._ttl)

    def _refresh(self, oldest: datetime) -> None:
        mono = self._monotonic()
        with self._lock:
            checked = self._checked_at
            if checked is not None and mono - checked < self._check_seconds:
                return
            self._checked_at = mono
        versions = cast(
            list[bytes | None],
            self._redis.mget(keys.NOT_ON_WHATSAPP_VERSION, keys.NOT_ON_WHATSAPP_FORGETS),
        )
        seen = self._versions
        if checked is not None and seen == versions:
            return
        if seen is None or seen[1] != versions[1] or not self._copy:
            rows, whole = self._store.all_not_on_whatsapp(oldest), True
        else:
            newest = max(self._copy.values()) - timedelta(seconds=LOAD_OVERLAP_SECONDS)
            rows, whole = self._store.all_not_on_whatsapp(max(oldest, newest)), False
        with self._lock:
            found = {r.phone: r.found_at for r in rows}
            self._copy = found if whole else {**self._copy, **found}
            self._versions = versions
