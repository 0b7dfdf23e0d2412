"""What each webhook does: quick, idempotent writes only.

- `connection.update` / `status.instance`: the instance's status, through the same mapping
  and rules as the poll (`worker/monitor/status.py`); a change schedules the alert pass at
  once (`alerts`), so the incident raises one alert whichever source saw it first.
- `messages.update`: the receipt of the message Evolution calls `keyId` (unknown ids are
  counted and ignored).
- `messages.upsert` from a contact: its reply pins it to the number it wrote to; a reply
  equal to an OPT_OUT_KEYWORDS word opts it out.
- anything else (other events, unknown instances, `send.message`) is counted and ignored.

Every outcome is counted in one Redis hash (`keys.WEBHOOK_OUTCOMES`) for `/metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from enum import StrEnum
from importlib.resources import files

import redis

from config import Settings
from config.settings import fold_text
from models.contact_store import ContactStore
from models.instance_store import InstanceStore, UnknownInstance
from models.receipt_store import ReceiptStore
from models.views import to_datetime
from worker import keys
from worker.clock import Clock
from worker.monitor.states import map_state
from worker.monitor.status import record_observation
from worker.optout import OptOutGate
from worker.phones import mask_phone
from worker.webhooks.events import (
    Envelope,
    Event,
    connection_change,
    inbound_message,
    receipt_update,
)

log = logging.getLogger("zapdispatch.webhooks")

#: How long the latest connection webhook's `date_time` is kept per instance (seconds): longer
#: than Evolution retries one (10 attempts, at most 300 s apart).
SEEN_TTL_SECONDS = 86_400

#: Schedules the alert pass; its argument is the contacts moved off newly banned numbers.
AlertTrigger = Callable[[Mapping[str, int]], None]


class Outcome(StrEnum):
    STATUS_CHANGED = "status_changed"
    STATUS_UNCHANGED = "status_unchanged"  # same status, or older than the one recorded
    STATUS_OUT_OF_ORDER = "status_out_of_order"  # sent before the last one applied
    RECEIPT_APPLIED = "receipt_applied"
    RECEIPT_STALE = "receipt_stale"  # a repeated or late receipt: nothing moves backwards
    RECEIPT_UNKNOWN = "receipt_unknown"  # no message has that id
    REPLY = "reply"
    OPTED_OUT = "opted_out"
    IGNORED_EVENT = "ignored_event"
    IGNORED_INSTANCE = "ignored_instance"
    IGNORED_MESSAGE = "ignored_message"  # not ours (fromMe false receipts, groups, PENDING)


def phone_candidates(digits: str) -> tuple[str, ...]:
    """The phones a WhatsApp JID's digits may be stored as. Brazilian mobiles registered
    before the ninth digit keep 12-digit JIDs (55 + area + 8 digits); the number a producer
    gave has the 9, so both spellings are tried, the JID's own first."""
    if digits.startswith("55") and len(digits) == 12 and digits[4] in "6789":
        return (digits, f"{digits[:4]}9{digits[4:]}")
    return (digits,)


class WebhookService:
    def __init__(
        self,
        settings: Settings,
        *,
        instances: InstanceStore,
        receipts: ReceiptStore,
        contacts: ContactStore,
        client: redis.Redis,
        clock: Clock,
        alerts: AlertTrigger,
        optouts: OptOutGate | None = None,
    ) -> None:
        self._ban_codes = settings.ban_codes
        self._opt_out_words = settings.opt_out_words
        self._instances = instances
        self._receipts = receipts
        self._contacts = contacts
        self._redis = client
        self._clock = clock
        self._alerts = alerts
        self._optouts = optouts
        self._newer = client.register_script(
            files("worker.webhooks").joinpath("newer.lua").read_text(encoding="utf-8")
        )

    def handle(self, envelope: Envelope) -> Outcome:
        """Apply one webhook; raises MalformedWebhook when its data cannot be read, and the
        database's or Redis's errors when they are down (nothing is half-applied)."""
        outcome = self._dispatch(envelope)
        self._redis.hincrby(keys.WEBHOOK_OUTCOMES, outcome.value, 1)
        return outcome

    def _dispatch(self, envelope: Envelope) -> Outcome:
        handler = self._handlers().get(envelope.event)
        if handler is None:
            return Outcome.IGNORED_EVENT
        if not self._known(envelope.instance):
            return Outcome.IGNORED_INSTANCE
        return handler(envelope)

    def _handlers(self) -> dict[str, Callable[[Envelope], Outcome]]:
        return {
            Event.CONNECTION_UPDATE: self._connection,
            Event.STATUS_INSTANCE: self._connection,
            Event.MESSAGES_UPDATE: self._receipt,
            Event.MESSAGES_UPSERT: self._inbound,
        }

    def _known(self, name: str) -> bool:
        if any(v.name == name for v in self._instances.snapshot()):
            return True
        try:
            self._instances.get(name)  # added in the last second: not in the snapshot yet
        except UnknownInstance:
            return False
        return True

    def _connection(self, envelope: Envelope) -> Outcome:
        change = connection_change(envelope)
        if change is None:
            return Outcome.IGNORED_MESSAGE
        if not self._in_order(envelope):
            return Outcome.STATUS_OUT_OF_ORDER
        seen = map_state(change.state, change.reason, self._ban_codes)
        at = to_datetime(self._clock.now())
        recorded = record_observation(self._instances, envelope.instance, seen, at, at)
        if recorded.change is None:
            return Outcome.STATUS_UNCHANGED
        self._redis.incr(keys.ROUTING_VERSION)  # every worker's routing reloads now
        migrated = {} if recorded.migrated is None else {envelope.instance: recorded.migrated}
        self._alerts(migrated)
        return Outcome.STATUS_CHANGED

    def _in_order(self, envelope: Envelope) -> bool:
        """False for a connection webhook Evolution sent before the last one applied (a retry
        arriving late); webhooks without a readable `date_time` are taken as they come."""
        if envelope.date_time is None:
            return True
        key = keys.webhook_connection_seen(envelope.instance)
        return bool(self._newer(keys=[key], args=[envelope.date_time, SEEN_TTL_SECONDS]))

    def _receipt(self, envelope: Envelope) -> Outcome:
        update = receipt_update(envelope)
        if update is None:
            return Outcome.IGNORED_MESSAGE
        at = to_datetime(self._clock.now())
        result = self._receipts.record(update.key_id, update.receipt, at)
        return {
            "applied": Outcome.RECEIPT_APPLIED,
            "stale": Outcome.RECEIPT_STALE,
            "unknown": Outcome.RECEIPT_UNKNOWN,
        }[result.value]

    def _inbound(self, envelope: Envelope) -> Outcome:
        inbound = inbound_message(envelope)
        if inbound is None:
            return Outcome.IGNORED_MESSAGE
        phones = phone_candidates(inbound.digits)
        at = to_datetime(self._clock.now())
        self._contacts.record_reply(phones, envelope.instance, at)
        if fold_text(inbound.text) not in self._opt_out_words:
            return Outcome.REPLY
        self._contacts.set_opted_out(phones, at)
        if self._optouts is not None:
            self._optouts.forget()
        log.info("contact %s opted out (reply to %s)", mask_phone(phones[0]), envelope.instance)
        return Outcome.OPTED_OUT
