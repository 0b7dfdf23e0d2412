"""`zapdispatch status`: the pool, messages by state, dead letters, pauses and the latest
messages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from models.activity_store import ActivityStore
from models.views import MessageView
from worker.broker.deadletters import DeadLetterStore
from worker.cli.instances import instance_table, stats_of
from worker.cli.output import emit_json, table
from worker.controls import pause_json
from worker.phones import mask_id, mask_phone
from worker.resources import Resources, resources
from worker.stats import iso, message_counts

RECENT_MESSAGES = 10
TEXT_PREVIEW_CHARS = 40


def recent_message_json(message: MessageView) -> dict[str, Any]:
    """A message for people: phone masked, text shortened."""
    text = message.text
    return {
        "id": str(message.id),
        "state": message.state.value,
        "instance": message.instance,
        "phone": mask_phone(message.phone or ""),
        "contact_id": mask_id(message.contact_id),
        "text": text if len(text) <= TEXT_PREVIEW_CHARS else text[:TEXT_PREVIEW_CHARS] + "…",
        "attempts": message.attempts,
        "requeues": message.requeues,
        "created_at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
        "last_error": message.last_error,
    }


def status_document(res: Resources) -> dict[str, Any]:
    """Overview, message counts by state, and the most recent messages."""
    body: dict[str, Any] = stats_of(res).overview().to_json()
    contacts = res.instances.contacts_assigned()
    for row in body["instances"]:
        row["contacts_assigned"] = contacts.get(row["name"], 0)
    recent = ActivityStore(res.sessions).recent_messages(RECENT_MESSAGES)
    body["messages"] = {
        "by_state": message_counts(res.messages.count_by_state()),
        "requeues": res.messages.total_requeues(),
        "recent": [recent_message_json(m) for m in recent],
    }
    body["dead_letters"] = DeadLetterStore(res.redis).count()
    body["pauses"] = [pause_json(e) for e in res.pauses.fresh().entries()]
    return body


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(as_json: bool) -> None:
    """Pool status, instances, messages by state and the latest messages."""
    document = status_document(resources())
    if as_json:
        emit_json(document)
        return
    click.echo(status_text(document))


def status_text(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    counts = doc["messages"]["by_state"]
    parts = [
        f"status: {doc['status']}  ({s['online']}/{s['total_instances']} online, "
        f"{s['banned']} banned; sent today {s['sent_today']}/{s['capacity_day']}, "
        f"{s['capacity_used_pct']:.1f}% used)",
        "",
        instance_table(doc["instances"]) if doc["instances"] else "no instances",
        "",
        "messages: " + ", ".join(f"{state} {n}" for state, n in counts.items()),
        f"dead letters: {doc['dead_letters']} (zapdispatch deadletters list)",
        "",
        *pauses_lines(doc.get("pauses", [])),
        table(
            ["ID", "STATE", "INSTANCE", "PHONE", "CREATED", "SENT"],
            [
                [
                    m["id"],
                    m["state"],
                    m["instance"] or "-",
                    m["phone"],
                    m["created_at"],
                    m["sent_at"] or "-",
                ]
                for m in doc["messages"]["recent"]
            ],
        ),
    ]
    return "\n".join(parts)


def pauses_lines(pauses: Sequence[dict[str, Any]]) -> list[str]:
    """`paused: all sending since …; campaign nov since …` and a blank line, or nothing."""
    if not pauses:
        return []
    said = [
        f"{'all sending' if p['scope'] == 'all' else p['scope'] + ' ' + p['target']} "
        f"since {p['since']}"
        for p in pauses
    ]
    return ["paused: " + "; ".join(said), ""]
