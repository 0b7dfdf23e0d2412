"""What `zapdispatch instances add` does beyond the row: ask Evolution for the number's
connection state at once (a connected number is routed without waiting for the health
check), and register this service's webhook on it (`POST /webhook/set/{instance}`).

The webhook carries WEBHOOK_TOKEN as `Authorization: Bearer <token>` (Evolution sends an
instance webhook's headers with every event), one URL for every event (`byEvents` off),
and the events zapdispatch reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from config import Settings
from models.views import to_datetime
from worker.clock import RedisClock
from worker.evolution import EvolutionError
from worker.monitor.states import Observation, map_state
from worker.monitor.status import record_observation
from worker.resources import Resources

#: The events `/webhooks/evolution` acts on, in Evolution's configuration spelling.
WEBHOOK_EVENTS = ("CONNECTION_UPDATE", "STATUS_INSTANCE", "MESSAGES_UPDATE", "MESSAGES_UPSERT")


class WebhookNotConfigured(ValueError):
    """PUBLIC_WEBHOOK_URL or WEBHOOK_TOKEN is missing."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What Evolution said (an observation) or why it could not be asked (`error`)."""

    observation: Observation | None
    error: str | None = None


def probe_and_record(res: Resources, name: str) -> Probe:
    """Ask Evolution for `name`'s state and record it like a poll would."""
    try:
        state = res.evolution.connection_state(name)
    except EvolutionError as exc:
        return Probe(None, str(exc))
    seen = map_state(state.state, None, res.settings.ban_codes)
    now = to_datetime(
        RedisClock(res.redis, test_clock_enabled=res.settings.test_clock_enabled).now()
    )
    record_observation(res.instances, name, seen, now, now)
    return Probe(seen)


def webhook_payload(settings: Settings) -> dict[str, Any]:
    """The `webhook` object of `/webhook/set` (shape of Evolution's webhookSchema)."""
    token = settings.webhook_secret
    if not settings.public_webhook_url or not token:
        raise WebhookNotConfigured(
            "set both PUBLIC_WEBHOOK_URL and WEBHOOK_TOKEN to register the webhook"
        )
    return {
        "enabled": True,
        "url": settings.public_webhook_url,
        "byEvents": False,
        "base64": False,
        "headers": {"Authorization": f"Bearer {token}"},
        "events": list(WEBHOOK_EVENTS),
    }


def register_webhook(res: Resources, name: str) -> None:
    """Register this service's webhook on `name`; raises WebhookNotConfigured or
    EvolutionError."""
    res.evolution.set_webhook(name, webhook_payload(res.settings))
