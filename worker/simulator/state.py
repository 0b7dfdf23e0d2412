"""In-memory state of the Evolution API simulator: instances, knobs, received messages.

Every read and write goes through `SimulatorState`, under one lock that is never held
across an `await`, so the state is safe from the event loop and from other threads.
Instances are immutable records, replaced on change, so readers get them without a copy.
Every sendText goes through here: keep per-request work O(1).
Times are unix seconds; latencies are milliseconds.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from worker.simulator.webhooks import WebhookEmitter

#: Injected sendText failures. Before sending: "500" (Evolution's error envelope), "400",
#: "429", "timeout" (hangs, sends nothing), "reset" (drops the connection, sends nothing).
#: After sending (the message is recorded, then the answer goes wrong): "late" (answers only
#: after `hang_seconds` or once the client gave up), "drop" (drops the connection
#: mid-answer), "proxy_502" (a proxy's 502 without Evolution's envelope), "unreadable" (201
#: with a body that is not JSON).
FailureMode = Literal[
    "500", "timeout", "429", "reset", "400", "late", "drop", "proxy_502", "unreadable"
]
ConnectionStatus = Literal["open", "connecting", "close", "refused"]


@dataclass
class SimulatorConfig:
    """Start-up settings. Per-instance knobs left unset fall back to the global ones.

    `latency_ms`: added before answering each sendText. `failure_rate` (0..1) of sendText
    calls fail with `failure_mode`. `hang_seconds`: how long a "timeout" failure or a hung
    connectionState waits at most (it stops early when the client disconnects).
    `retry_after_seconds`: the Retry-After of simulated 429s. `seed`: makes ids and failure
    draws repeatable.
    """

    instances: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    seed: int | None = None
    api_key: str | None = None
    not_on_whatsapp: list[str] = field(default_factory=list)
    failure_rate: float = 0.0
    failure_mode: FailureMode = "500"
    retry_after_seconds: float = 1.0
    hang_seconds: float = 60.0
    #: Whether `POST /chat/findMessages/{instance}` lists sent messages (Evolution's
    #: DATABASE_SAVE_DATA_NEW_MESSAGE); False: it answers an empty list.
    keep_messages: bool = True
    #: Whether the findMessages route exists (False: 404, as a server without it).
    find_messages_route: bool = True
    #: Webhooks (worker/simulator/webhooks.py): SERVER_ACK, DELIVERY_ACK and READ this many
    #: milliseconds after an accepted sendText (empty: no receipts); the URL and headers
    #: used for instances without their own `/webhook/set`.
    receipt_delays_ms: list[float] = field(default_factory=list)
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = field(default_factory=dict)
    #: Evolution 2.4's licence gate: every route but `/_sim/` answers 503 LICENSE_REQUIRED.
    license_required: bool = False


@dataclass(frozen=True)
class SimInstance:
    """One simulated instance. None knobs mean "use the global setting"."""

    name: str
    instance_id: str
    number: str
    created_at: float
    state: ConnectionStatus = "open"
    disconnection_reason: int | None = None
    disconnection_at: float | None = None
    latency_ms: float | None = None
    failure_rate: float | None = None
    failure_mode: FailureMode | None = None
    hang_connection_state: bool = False
    #: Accepts sends and never delivers them: only SERVER_ACK receipts (an early ban sign).
    never_delivers: bool = False
    #: False: in Evolution's database but not in its memory (connectionState has no state,
    #: sendText and findMessages answer 500).
    loaded: bool = True
    #: fetchInstances' `connectionStatus` (a database value); None: the live `state`. Set
    #: it to "open" with a live "connecting"/"close" to simulate an auto-reconnect.
    db_state: ConnectionStatus | None = None
    #: The instance's own api key (Evolution's `token`); None: it has none.
    token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReceivedMessage:
    """A sendText the simulator accepted (answered 201)."""

    instance: str
    number: str
    text: str
    provider_message_id: str
    received_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SendPlan:
    """What to do with one sendText, decided up front: latency in ms, failure or None."""

    latency_ms: float
    failure: FailureMode | None


class SimulatorState:
    """The simulator's mutable world. Safe to share between threads and coroutines."""

    def __init__(self, config: SimulatorConfig) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(config.seed)
        self.config = replace(config, instances=[], not_on_whatsapp=list(config.not_on_whatsapp))
        self._not_on_whatsapp = _digit_set(self.config.not_on_whatsapp)
        self._instances: dict[str, SimInstance] = {}
        self._messages: list[ReceivedMessage] = []
        self.delays: dict[str, int] = {}  # number → `delay` (ms) of its last sendText
        self._requests: Counter[str] = Counter()
        self._on_whatsapp_cache: set[str] = set()  # numbers delivered to: known on WhatsApp
        #: This server's id (the licence gate's `instance_id`).
        self.server_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self._outcomes: dict[str, Counter[str]] = {}
        #: Set by the app once its event loop runs; told of state changes and sends.
        self.webhooks: WebhookEmitter | None = None
        for name in config.instances:
            self.upsert_instance(name, {})

    # --- instances ---------------------------------------------------------------------

    def instance(self, name: str) -> SimInstance | None:
        """The instance as it is now, or None if it does not exist."""
        with self._lock:
            return self._instances.get(name)

    def instances(self) -> list[SimInstance]:
        with self._lock:
            return list(self._instances.values())

    def upsert_instance(self, name: str, changes: dict[str, Any]) -> SimInstance:
        """Create the instance if needed, then apply `changes` (field name → value)."""
        with self._lock:
            existing = self._instances.get(name)
            current = existing or self._new_instance(name)
            updated = _with_state_change(current, changes, time.time())
            self._instances[name] = updated
        if self.webhooks is not None:
            self.webhooks.instance_changed(existing, updated)
        return updated

    def delete_instance(self, name: str) -> bool:
        with self._lock:
            return self._instances.pop(name, None) is not None

    def _new_instance(self, name: str) -> SimInstance:
        return SimInstance(
            name=name,
            instance_id=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            number=f"55119{self._rng.randrange(10**8):08d}",
            created_at=time.time(),
        )

    # --- global settings ---------------------------------------------------------------

    def update_config(self, changes: dict[str, Any]) -> SimulatorConfig:
        with self._lock:
            self.config = replace(self.config, **changes)
            self._not_on_whatsapp = _digit_set(self.config.not_on_whatsapp)
            return replace(self.config)

    def is_on_whatsapp(self, number: str) -> bool:
        """False if `number` is in `not_on_whatsapp`, both compared by their digits only."""
        with self._lock:
            blocked = self._not_on_whatsapp
        return _digits(number) not in blocked

    # --- sends -------------------------------------------------------------------------

    def plan_send(self, instance: SimInstance) -> SendPlan:
        """Latency and failure draw for one sendText on `instance` (seeded randomness)."""
        with self._lock:
            config = self.config
            rate = _first(instance.failure_rate, config.failure_rate)
            mode = instance.failure_mode or config.failure_mode
            fails = rate > 0 and self._rng.random() < rate
            return SendPlan(_first(instance.latency_ms, config.latency_ms), mode if fails else None)

    def new_message_id(self) -> str:
        """A provider id shaped like WhatsApp Web's: "3EB0" and 16 hex digits."""
        with self._lock:
            return f"3EB0{self._rng.getrandbits(64):016X}"

    def count_request(self, instance: str) -> None:
        with self._lock:
            self._requests[instance] += 1

    def count_outcome(self, instance: str, outcome: str) -> None:
        """`outcome`: the HTTP status answered ("201", "400", ...), "timeout" or "reset"."""
        with self._lock:
            outcomes = self._outcomes.get(instance)
            if outcomes is None:
                outcomes = self._outcomes[instance] = Counter()
            outcomes[outcome] += 1

    def note_delay(self, number: str, delay_ms: int) -> None:
        """Remember the `delay` (ms) of the last sendText to `number` (GET /_sim/delays)."""
        self.delays[number] = delay_ms

    def on_whatsapp_cached(self, number: str) -> bool:
        """Whether Evolution's on-WhatsApp cache knows `number` (it was delivered to)."""
        with self._lock:
            return _digits(number) in self._on_whatsapp_cache

    def record_message(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)
            self._on_whatsapp_cache.add(_digits(message.number))
        instance = self.instance(message.instance)
        if self.webhooks is not None and instance is not None:
            self.webhooks.message_accepted(instance, message)

    def messages(self, instance: str | None = None) -> list[ReceivedMessage]:
        with self._lock:
            return [m for m in self._messages if instance is None or m.instance == instance]

    def reset_messages(self) -> None:
        """Forget received messages and request counters."""
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._outcomes.clear()

    def stats(self) -> dict[str, Any]:
        """sendText requests per instance: total, accepted (201), failed, by outcome."""
        with self._lock:
            per_instance = {
                name: _instance_stats(count, self._outcomes.get(name, Counter()))
                for name, count in self._requests.items()
            }
            return {"total_requests": sum(self._requests.values()), "instances": per_instance}


def _instance_stats(requests: int, outcomes: Counter[str]) -> dict[str, Any]:
    accepted = outcomes.get("201", 0)
    failed = sum(outcomes.values()) - accepted
    return {"requests": requests, "accepted": accepted, "failed": failed, "outcomes": outcomes}


def _with_state_change(current: SimInstance, changes: dict[str, Any], now: float) -> SimInstance:
    """Apply `changes`; a move to close stamps `disconnection_at`, a move to open clears it."""
    updated = replace(current, **changes)
    if updated.state == current.state or "disconnection_at" in changes:
        return updated
    if updated.state == "close":
        return replace(updated, disconnection_at=now)
    if updated.state == "open":
        cleared: dict[str, Any] = {"disconnection_at": None}
        if "disconnection_reason" not in changes:
            cleared["disconnection_reason"] = None
        return replace(updated, **cleared)
    return updated


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def _digits(number: str) -> str:
    return number if number.isdigit() else "".join(filter(str.isdigit, number))


def _digit_set(numbers: list[str]) -> frozenset[str]:
    return frozenset(_digits(number) for number in numbers)
