"""The opt-out gate: nothing is sent to a contact that opted out, by contact id or by phone.

Opt-outs are few, so each process keeps the set of opted-out ids and phones and reloads it
when it is older than `refresh_seconds` (monotonic): an opt-out recorded anywhere takes
effect in every worker within that time, at no cost per message in between. Checked where a
message is accepted (`Pipeline.send`, `enqueue_message`) and again before each delivery
attempt, so messages already waiting when the contact opted out are not sent either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from models.contact_store import ContactStore, OptedOut

#: Every opted-out message's `last_error` starts with this.
OPTED_OUT = "opted out"
#: How long a process trusts its copy of the opted-out set (seconds).
REFRESH_SECONDS = 1.0


def opted_out_reason(contact_id: str | None) -> str:
    return f"{OPTED_OUT}: the contact asked not to be messaged (contact {contact_id or '-'})"


class OptOutGate:
    def __init__(
        self,
        contacts: ContactStore,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._contacts = contacts
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cached: tuple[float, OptedOut] | None = None

    def blocks(self, contact_id: str | None, phone: str | None) -> bool:
        """Whether a message to `contact_id` / `phone` (normalized digits) must not be sent."""
        return self._current().covers(contact_id, phone)

    def forget(self) -> None:
        """Reload on the next check (this process just changed an opt-out)."""
        self._cached = None

    def _current(self) -> OptedOut:
        now = self._monotonic()
        cached = self._cached
        if cached is not None and now - cached[0] < self._refresh_seconds:
            return cached[1]
        with self._lock:
            fresh = self._contacts.opted_out()
            self._cached = (now, fresh)
            return fresh
