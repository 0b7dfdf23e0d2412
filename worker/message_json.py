"""Messages and their timelines as JSON, the same for the status API and the CLI: the keys
of `GET /messages/{id}`, the phone masked."""

from __future__ import annotations

from typing import Any

from models.message_query_store import MessageRecord, TimelineEvent
from worker.phones import mask_phone
from worker.stats import iso


def message_json(m: MessageRecord) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "state": m.state.value,
        "instance": m.instance,
        "contact_id": m.contact_id,
        "phone": mask_phone(m.phone) if m.phone else None,
        "campaign": m.campaign,
        "provider_message_id": m.provider_message_id,
        "receipt": m.receipt.value if m.receipt is not None else None,
        "created_at": iso(m.created_at),
        "sent_at": iso(m.sent_at),
        "delivered_at": iso(m.delivered_at),
        "read_at": iso(m.read_at),
        "not_before": iso(m.not_before),
        "attempts": m.attempts,
        "requeues": m.requeues,
        "last_error": m.last_error,
    }


def event_json(e: TimelineEvent) -> dict[str, Any]:
    return {
        "at": iso(e.at),
        "kind": e.kind,
        "instance": e.instance,
        "reason": e.reason,
        "until": iso(e.until),
    }
