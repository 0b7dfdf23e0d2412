"""The bodies of Evolution's successful answers, read into values.

Each reader takes a decoded JSON body and returns the project's values (`SentText`,
`StoredMessage`, `InstanceState`); a body of another shape raises, as each reader says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.evolution.errors import TransientEvolutionError
from worker.evolution.exchange import HttpAnswer

#: `InstanceState.state` of an instance Evolution keeps in its database but has not loaded
#: in memory (its connectionState answer has no `state`). Not a state Evolution sends.
NOT_LOADED = "not_loaded"


@dataclass(frozen=True, slots=True)
class SentText:
    """A message the server accepted (any 2xx). `provider_message_id` is its `key.id`,
    None when the answer's body could not be read (it was sent all the same)."""

    provider_message_id: str | None
    status: str
    remote_jid: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message Evolution stored for a chat. `timestamp` is unix seconds; `text` is the
    conversation text ("" for other message types)."""

    provider_message_id: str
    from_me: bool
    text: str
    timestamp: float


@dataclass(frozen=True, slots=True)
class InstanceState:
    """One instance's connection, as the server reports it.

    `state` is open/connecting/close/refused, or `NOT_LOADED`; `disconnection_reason` is
    the reason code of the last close (401 logged out, 403 banned, 402, 406), None if
    unknown or not closed.
    """

    name: str
    state: str
    disconnection_reason: int | None
    number: str | None


def parse_sent(answer: HttpAnswer) -> SentText:
    """A 2xx answer: sent, whatever its body; the id when the body has one."""
    try:
        body = answer.json()
    except ValueError:
        body = None
    key = body.get("key") if isinstance(body, dict) else None
    key = key if isinstance(key, dict) else {}
    message_id, remote_jid = key.get("id"), key.get("remoteJid")
    status = body.get("status") if isinstance(body, dict) else None
    return SentText(
        provider_message_id=message_id if isinstance(message_id, str) and message_id else None,
        status=status if isinstance(status, str) else "",
        remote_jid=remote_jid if isinstance(remote_jid, str) else "",
    )


def parse_stored(body: Any) -> list[StoredMessage]:
    """findMessages' `{"messages": {"records": [...]}}` as StoredMessages (records of
    another shape are skipped); ValueError when the body is not of that shape."""
    messages = body.get("messages") if isinstance(body, dict) else None
    records = messages.get("records") if isinstance(messages, dict) else None
    if not isinstance(records, list):
        raise ValueError("no messages.records list")
    return [stored for record in records if (stored := _stored_message(record)) is not None]


def _stored_message(record: Any) -> StoredMessage | None:
    key = record.get("key") if isinstance(record, dict) else None
    if not isinstance(key, dict) or not isinstance(key.get("id"), str):
        return None
    stamp = record.get("messageTimestamp")
    if isinstance(stamp, str) and stamp.isdigit():
        stamp = int(stamp)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        return None
    return StoredMessage(
        provider_message_id=key["id"],
        from_me=key.get("fromMe") is True,
        text=_message_text(record.get("message")),
        timestamp=float(stamp),
    )


def _message_text(message: Any) -> str:
    """The text of a stored message: `conversation`, or `extendedTextMessage.text`."""
    if not isinstance(message, dict):
        return ""
    if isinstance(message.get("conversation"), str):
        return str(message["conversation"])
    extended = message.get("extendedTextMessage")
    if isinstance(extended, dict) and isinstance(extended.get("text"), str):
        return str(extended["text"])
    return ""


def parse_connection_state(body: Any, instance: str) -> InstanceState:
    """`{"instance": {"instanceName", "state"}}`; without `state` (Evolution leaves it out
    for an instance in its database but not loaded in memory) the state is `NOT_LOADED`.
    TransientEvolutionError when there is no `instance` object or `state` is not a string."""
    inner = body.get("instance") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        raise TransientEvolutionError(
            f"instance {instance!r}: connectionState answer has no instance", instance=instance
        )
    state = inner.get("state")
    if state is None:
        state = NOT_LOADED
    if not isinstance(state, str) or not state:
        raise TransientEvolutionError(
            f"instance {instance!r}: connectionState answer has no usable state",
            instance=instance,
        )
    return InstanceState(name=instance, state=state, disconnection_reason=None, number=None)


def parse_instances(body: Any) -> list[InstanceState]:
    if not isinstance(body, list):
        raise TransientEvolutionError("fetchInstances answer is not a JSON array")
    return [_parse_instance_record(record) for record in body]


def _parse_instance_record(record: Any) -> InstanceState:
    if not isinstance(record, dict):
        raise TransientEvolutionError("fetchInstances record is not an object")
    name, state = record.get("name"), record.get("connectionStatus")
    if not isinstance(name, str) or not isinstance(state, str):
        raise TransientEvolutionError("fetchInstances record lacks name or connectionStatus")
    reason = record.get("disconnectionReasonCode")
    return InstanceState(
        name=name,
        state=state,
        disconnection_reason=reason if type(reason) is int else None,
        number=_record_number(record),
    )


def _record_number(record: dict[str, Any]) -> str | None:
    """`number`, or the user part of `ownerJid` (`5511...@s.whatsapp.net`) when it is null."""
    number = record.get("number")
    if isinstance(number, str) and number:
        return number
    owner = record.get("ownerJid")
    if isinstance(owner, str) and "@" in owner:
        return owner.split("@", 1)[0] or None
    return None
