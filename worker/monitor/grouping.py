"""Grouped notifications: incidents of one kind that one health check opened (or reminded,
or resolved) together go out as one message per channel, naming every instance with a
count, instead of one message each. A mass outage is one Slack post, not a hundred.

Pure. The outbox keeps one notification per alert (each alert still opens, reminds and
resolves on its own); this only decides how pending ones are worded and sent: those with
the same channel, kind, event and creation time (one run stamps them all with its time)
form a group. A group of one (a number recovering alone) reads exactly as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from models.enums import POOL_SUBJECT, AlertKind, NotificationEvent
from models.views import PendingNotification

#: A grouped message quotes at most this many members' own texts (every name is listed).
MAX_DETAIL_LINES = 20

_WHAT = {
    AlertKind.INSTANCE_OFFLINE: "instances offline",
    AlertKind.INSTANCE_BANNED: "instances BANNED",
    AlertKind.CAPACITY_HIGH: "instances at high capacity",
    AlertKind.CIRCUIT_OPEN: "instances failing sends",
}


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to send, and the outbox rows it settles."""

    notification: PendingNotification
    ids: tuple[int, ...]


def _key(n: PendingNotification) -> tuple[object, ...]:
    return (n.channel, n.kind, n.event, n.created_at)


def group_pending(pending: Sequence[PendingNotification]) -> list[Outgoing]:
    """Pending notifications (oldest first) as the messages to send, in the same order."""
    groups: dict[tuple[object, ...], list[PendingNotification]] = {}
    for n in pending:
        groupable = n.kind in _WHAT and n.subject != POOL_SUBJECT
        key = _key(n) if groupable else ("single", n.id)
        groups.setdefault(key, []).append(n)
    return [
        Outgoing(members[0], (members[0].id,))
        if len(members) == 1
        else Outgoing(combined(members), tuple(m.id for m in members))
        for members in groups.values()
    ]


def combined(members: Sequence[PendingNotification]) -> PendingNotification:
    """One notification for several of the same kind and event: the count and every name
    in the title and first line, then the members' own texts (at most MAX_DETAIL_LINES)."""
    first = members[0]
    count = len(members)
    names = sorted(m.subject for m in members)
    what = _WHAT[first.kind]
    title = f"{count} {what}"
    if first.event is NotificationEvent.RESOLVED:
        title = f"Resolved: {count} {what.replace('instances ', 'instances no longer ')}"
    lines = [f"{count} instances: {', '.join(names)}."]
    detailed = sorted(members, key=lambda m: m.subject)[:MAX_DETAIL_LINES]
    lines += [f"• {m.subject}: {m.body}" for m in detailed]
    if count > MAX_DETAIL_LINES:
        lines.append(f"… and {count - MAX_DETAIL_LINES} more.")
    return replace(first, title=title, body="\n".join(lines))
