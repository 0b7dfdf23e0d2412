"""Which pending notifications go out together, and how a group reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from models.enums import POOL_SUBJECT, AlertKind, AlertSeverity, Channel, NotificationEvent
from models.views import PendingNotification
from worker.monitor.grouping import group_pending

T = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


def pending(
    id_: int,
    subject: str,
    *,
    kind: AlertKind = AlertKind.INSTANCE_OFFLINE,
    channel: Channel = Channel.SLACK,
    event: NotificationEvent = NotificationEvent.OPENED,
    at: datetime = T,
) -> PendingNotification:
    return PendingNotification(
        id=id_,
        alert_id=id_,
        kind=kind,
        subject=subject,
        severity=AlertSeverity.ERROR,
        channel=channel,
        event=event,
        title=f"Instance {subject} offline",
        body=f"WhatsApp instance '{subject}' is disconnected.",
        created_at=at,
        attempts=0,
    )


def test_one_run_one_kind_one_channel_is_one_message() -> None:
    out = group_pending([pending(1, "b"), pending(2, "a"), pending(3, "c")])
    assert len(out) == 1 and out[0].ids == (1, 2, 3)
    n = out[0].notification
    assert n.title == "3 instances offline"
    assert n.body.splitlines()[0] == "3 instances: a, b, c."
    assert n.body.splitlines()[1] == "• a: WhatsApp instance 'a' is disconnected."


def test_alone_other_runs_other_kinds_channels_and_the_pool_stay_apart() -> None:
    out = group_pending(
        [
            pending(1, "a"),
            pending(2, "b", at=T + timedelta(minutes=1)),
            pending(3, "c", kind=AlertKind.CAPACITY_HIGH),
            pending(4, "d", channel=Channel.EMAIL),
            pending(5, POOL_SUBJECT, kind=AlertKind.ALL_OFFLINE),
            pending(6, POOL_SUBJECT, kind=AlertKind.ALL_OFFLINE),
            pending(7, "e", event=NotificationEvent.RESOLVED),
        ]
    )
    assert [o.ids for o in out] == [(1,), (2,), (3,), (4,), (5,), (6,), (7,)]
    assert out[0].notification.title == "Instance a offline"  # a group of one reads as before


def test_resolved_group_title() -> None:
    resolved = [pending(i, f"n{i}", event=NotificationEvent.RESOLVED) for i in range(2)]
    (out,) = group_pending(resolved)
    assert out.notification.title == "Resolved: 2 instances no longer offline"
