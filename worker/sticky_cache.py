"""Contacts' sticky instances as this worker process last saw them: a hint for routing.

A new message is routed on the hint before it is recorded, and recorded already claimed
for the reserved instance in one statement (`MessageStore.accept_claiming`), which checks
the hint against the database. A wrong hint (another worker moved the contact, a ban
cleared it) costs one more statement and a second reservation, never a wrong claim.

A contact the cache does not know is routed as a new contact while most such contacts
turn out to be new (a warm worker meeting new doctors); when most turn out to have a
sticky instance already (a worker just started, or more contacts than the cache holds),
its message is recorded first and routed on the database's answer (three statements, as
for a redelivered message), instead of paying for wrong guesses.

Bounded: past `max_entries`, the oldest entries are forgotten first (insertion order).
Reads take no lock; writes take one, and only when the value changes.
"""

from __future__ import annotations

import threading

#: Contacts remembered per worker process (about 150 bytes each: ~15 MB at this size).
STICKY_CACHE_ENTRIES = 100_000
#: Weight of the newest unknown contact in the running share of those that were new.
NEW_SHARE_WEIGHT = 0.05
#: Route unknown contacts as new while at least this share of them turned out new.
GUESS_NEW_ABOVE = 0.5


class StickyCache:
    def __init__(self, max_entries: int = STICKY_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._entries: dict[str, str] = {}
        self._max = max_entries
        self._lock = threading.Lock()
        # Start by asking: a worker (re)starting among known contacts pays nothing extra,
        # and a few unknown contacts that turn out new switch it to guessing.
        self._new_share = 0.0

    def get(self, contact_id: str) -> str | None:
        """The contact's sticky instance as last seen; None if it had none or is unknown."""
        return self._entries.get(contact_id)

    def put(self, contact_id: str, instance: str | None) -> None:
        """Remember what the database said (or what this worker just made it say)."""
        if self._entries.get(contact_id) == instance:
            return
        with self._lock:
            self._entries.pop(contact_id, None)  # re-inserted last: the newest entry
            if instance is None:
                return
            while len(self._entries) >= self._max:
                del self._entries[next(iter(self._entries))]
            self._entries[contact_id] = instance

    def guess_unknown_are_new(self) -> bool:
        """Whether to route a contact the cache does not know as a new contact."""
        return self._new_share >= GUESS_NEW_ABOVE

    def learn_unknown(self, *, was_new: bool) -> None:
        """What the database said of a contact the cache did not know: it had no sticky
        instance yet (`was_new`), or it had one."""
        self._new_share += NEW_SHARE_WEIGHT * (float(was_new) - self._new_share)

    def __len__(self) -> int:
        return len(self._entries)
