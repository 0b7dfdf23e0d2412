"""Clients for the Evolution API v2.

`EvolutionClient` (sync) sends messages from Celery workers; `AsyncEvolutionClient` polls
connection states for the health check. Both convert every failure into the exceptions of
`worker.evolution.errors` in one place (`_to_error`). The API key travels only in the
`apikey` header and is never logged or put in a message; phone numbers are masked.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from worker.evolution.errors import (
    EvolutionAuthError,
    EvolutionError,
    InstanceRateLimited,
    InstanceUnavailable,
    LookUpUnavailable,
    RecipientNotOnWhatsApp,
    SendOutcomeUnknown,
    TransientEvolutionError,
)
from worker.evolution.exchange import (
    Exchange,
    ExchangeFailed,
    HttpAnswer,
    HttpxExchange,
    Timeouts,
)
from worker.evolution.keepalive import KeepAliveHTTP
from worker.phones import mask_phone

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
USER_AGENT = "zapdispatch"
"""Seconds: 5 to connect, 15 for each read/write/pool wait."""

#: Messages asked for per findMessages page (Evolution's `offset`); newest first.
LOOK_UP_PAGE = 50
_DIGIT_RUN = re.compile(r"\d{6,}")
_MAX_DETAIL_CHARS = 200


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

    `state` is open/connecting/close/refused; `disconnection_reason` is the reason code of
    the last close (401 logged out, 403 banned, 402, 406), None if unknown or not closed.
    """

    name: str
    state: str
    disconnection_reason: int | None
    number: str | None


class EvolutionClient:
    """Synchronous client; one per worker process (its exchange holds a connection pool).

    By default it speaks keep-alive HTTP/1.1 through the standard library's `http.client`
    (`worker/evolution/keepalive.py`: a connection per thread and instance). With
    `transport` (an httpx transport, e.g. `httpx.MockTransport` in tests) requests go
    through it instead. Either way sends connect to EVOLUTION_API_URL directly (HTTP_PROXY
    and friends are not read, and credentials in the URL are not sent: Evolution
    authenticates by the `apikey` header). One exchange takes at most the connect timeout
    plus the read timeout, all phases together.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: httpx.Timeout | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = list(_headers(api_key).items())
        timeout = timeout or DEFAULT_TIMEOUT
        self._http: Exchange = (
            HttpxExchange(base_url, headers, timeout, transport)
            if transport is not None
            else KeepAliveHTTP(base_url, headers, Timeouts.from_httpx(timeout))
        )

    def send_text(self, instance: str, number: str, text: str, *, delay_ms: int = 0) -> SentText:
        """Send `text` to `number` (digits, with country code) through `instance`. With
        `delay_ms` > 0, Evolution shows "typing…" that long (milliseconds, an integer) and
        answers only after it.

        Classified by what is proven: any 2xx is sent (also with a body that cannot be
        read); a failure to connect or to write the whole request, or an error Evolution
        answered in its own envelope, is not sent (TransientEvolutionError and the rest of
        the tree); anything after the request was written without a trustworthy answer
        raises SendOutcomeUnknown."""
        fields: dict[str, object] = {"number": number, "text": text}
        if delay_ms > 0:
            fields["delay"] = int(delay_ms)
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        try:
            answer = self._http.exchange("POST", _send_path(instance), body.encode(), key=instance)
        except ExchangeFailed as exc:
            if exc.request_written:
                raise SendOutcomeUnknown(
                    f"{_where(instance, number)}: {exc.kind} after the request was written",
                    instance=instance,
                ) from exc
            raise _to_error(exc, instance, number) from exc
        if 200 <= answer.status < 300:
            return _parse_sent(answer)
        if answer.status >= 500 and not _has_envelope(answer):
            raise SendOutcomeUnknown(
                f"{_where(instance, number)}: HTTP {answer.status} without Evolution's "
                "error body (a proxy answered)",
                instance=instance,
                status_code=answer.status,
            )
        raise _to_error(answer, instance, number)

    def sent_messages(self, instance: str, number: str) -> list[StoredMessage]:
        """The newest messages `instance` sent to `number`, as Evolution stored them
        (`POST /chat/findMessages/{instance}`). Raises LookUpUnavailable when Evolution
        cannot be asked (no such route, an error answer, a body of another shape), and
        TransientEvolutionError when it could not be reached (ask again later)."""
        query = {
            "where": {"key": {"remoteJid": f"{number}@s.whatsapp.net", "fromMe": True}},
            "offset": LOOK_UP_PAGE,
            "page": 1,
        }
        return self._find_messages(instance, number, query)

    def keeps_messages(self, instance: str) -> bool:
        """Whether Evolution stores what `instance` sends: it lists at least one message
        sent from it. An instance that has sent and lists none keeps nothing."""
        query = {"where": {"key": {"fromMe": True}}, "offset": 1, "page": 1}
        return bool(self._find_messages(instance, None, query))

    def _find_messages(
        self, instance: str, number: str | None, query: dict[str, Any]
    ) -> list[StoredMessage]:
        body = json.dumps(query, separators=(",", ":")).encode()
        with _at_edge(instance, number):
            answer = self._http.exchange("POST", _find_path(instance), body, key=instance)
        if answer.status not in (200, 201):
            raise LookUpUnavailable(
                f"{_where(instance, number)}: findMessages answered HTTP {answer.status}",
                instance=instance,
                status_code=answer.status,
            )
        try:
            return _parse_stored(answer.json())
        except ValueError as exc:
            raise LookUpUnavailable(
                f"{_where(instance, number)}: findMessages answer unreadable ({exc})",
                instance=instance,
            ) from exc

    def connection_state(self, instance: str) -> InstanceState:
        """The state of one instance (no number or reason: this endpoint lacks them)."""
        with _at_edge(instance):
            answer = self._http.exchange("GET", _state_path(instance), None)
        return _parse_connection_state(_ok_json(answer, instance), instance)

    def fetch_instances(self) -> list[InstanceState]:
        """Every instance the server knows, in one call (needs the global key)."""
        with _at_edge(None):
            answer = self._http.exchange("GET", "/instance/fetchInstances", None)
        return _parse_instances(_ok_json(answer, None))

    def set_webhook(self, instance: str, webhook: Mapping[str, Any]) -> None:
        """`POST /webhook/set/{instance}` with `{"webhook": webhook}` (Evolution answers 201)."""
        body = json.dumps({"webhook": dict(webhook)}, separators=(",", ":"))
        path = f"/webhook/set/{quote(instance, safe='')}"
        with _at_edge(instance):
            answer = self._http.exchange("POST", path, body.encode())
        _ok_json(answer, instance, ok=frozenset({200, 201}))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EvolutionClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class AsyncEvolutionClient:
    """Asynchronous client for health polls (worker/monitor/poll.py runs the calls
    concurrently, each bounded by its own timeout)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=_headers(api_key),
            timeout=timeout or DEFAULT_TIMEOUT,
            # An explicit transport, as for the sends: no proxies from the environment.
            transport=transport or httpx.AsyncHTTPTransport(),
        )

    async def connection_state(self, instance: str) -> InstanceState:
        """The state of one instance (no number or reason: this endpoint lacks them)."""
        with _at_edge(instance):
            response = await self._http.get(_state_path(instance))
        answer = HttpAnswer.from_httpx(response)
        return _parse_connection_state(_ok_json(answer, instance), instance)

    async def fetch_instances(self) -> list[InstanceState]:
        """Every instance the server knows, in one call (needs the global key)."""
        with _at_edge(None):
            response = await self._http.get("/instance/fetchInstances")
        return _parse_instances(_ok_json(HttpAnswer.from_httpx(response), None))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncEvolutionClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


# --- requests -------------------------------------------------------------------------


def _headers(api_key: str | None) -> dict[str, str]:
    """Sent with every request: who we are, what we read, and the key when there is one."""
    base = {"user-agent": USER_AGENT, "accept": "application/json"}
    return base | {"apikey": api_key} if api_key else base


def _send_path(instance: str) -> str:
    return f"/message/sendText/{quote(instance, safe='')}"


def _find_path(instance: str) -> str:
    return f"/chat/findMessages/{quote(instance, safe='')}"


def _state_path(instance: str) -> str:
    return f"/instance/connectionState/{quote(instance, safe='')}"


@contextlib.contextmanager
def _at_edge(instance: str | None, number: str | None = None) -> Iterator[None]:
    """Convert transport errors (timeouts, resets, refused, malformed answers) into ours."""
    try:
        yield
    except (httpx.HTTPError, ExchangeFailed) as exc:
        raise _to_error(exc, instance, number) from exc


def _ok_json(
    response: HttpAnswer,
    instance: str | None,
    number: str | None = None,
    *,
    ok: frozenset[int] = frozenset({200}),
) -> Any:
    """The decoded body of a successful answer; raise the mapped error otherwise."""
    if response.status not in ok:
        raise _to_error(response, instance, number)
    try:
        return response.json()
    except ValueError as exc:
        raise _unexpected(response, instance, "body is not JSON") from exc


# --- error mapping ----------------------------------------------------------------------


def _to_error(
    failure: HttpAnswer | httpx.HTTPError | ExchangeFailed,
    instance: str | None,
    number: str | None,
) -> EvolutionError:
    """The one place where an HTTP answer or a transport failure becomes an EvolutionError."""
    if isinstance(failure, ExchangeFailed | httpx.HTTPError):
        kind = failure.kind if isinstance(failure, ExchangeFailed) else type(failure).__name__
        return TransientEvolutionError(f"{_where(instance, number)}: {kind}", instance=instance)
    status = failure.status
    detail = f"{_where(instance, number)}: HTTP {status} {_details(failure)}".rstrip()
    if status == 400 and _says_not_on_whatsapp(failure):
        return RecipientNotOnWhatsApp(detail, instance=instance, status_code=status)
    if status in (400, 404):
        return InstanceUnavailable(detail, instance=instance, status_code=status)
    if status in (401, 403):
        return EvolutionAuthError(detail, instance=instance, status_code=status)
    if status == 429:
        retry_after = _retry_after_seconds(failure.headers.get("retry-after"), time.time())
        return InstanceRateLimited(detail, instance=instance, retry_after_seconds=retry_after)
    # 5xx, and statuses the contract does not name: retrying is the safe default.
    return TransientEvolutionError(detail, instance=instance, status_code=status)


def _unexpected(response: HttpAnswer, instance: str | None, why: str) -> EvolutionError:
    message = f"{_where(instance, None)}: unexpected answer (HTTP {response.status}): {why}"
    return TransientEvolutionError(message, instance=instance, status_code=response.status)


def _where(instance: str | None, number: str | None) -> str:
    where = f"instance {instance!r}" if instance is not None else "Evolution API"
    return f"{where} to {mask_phone(number)}" if number is not None else where


def _server_messages(response: HttpAnswer) -> list[Any]:
    """`response.message` of the contract's error shape, as a list (empty if absent)."""
    try:
        body = response.json()
    except ValueError:
        return []
    inner = body.get("response") if isinstance(body, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    if message is None:
        return []
    return message if isinstance(message, list) else [message]


def _has_envelope(response: HttpAnswer) -> bool:
    """Whether an error answer is Evolution's own JSON: its error envelope
    (`{"status", "error", "response"}`) or its licence gate (`{"error": "service not
    activated", "code": "LICENSE_REQUIRED"}`, 503). Then Evolution refused before sending.
    A proxy's 5xx has no such body."""
    try:
        body = response.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    envelope = isinstance(body.get("status"), int) and ("response" in body or "error" in body)
    return envelope or (isinstance(body.get("error"), str) and isinstance(body.get("code"), str))


def _says_not_on_whatsapp(response: HttpAnswer) -> bool:
    messages = _server_messages(response)
    return any(isinstance(item, dict) and item.get("exists") is False for item in messages)


def _details(response: HttpAnswer) -> str:
    """The server's messages, phone-like digit runs masked, cut to a sane length."""
    text = "; ".join(str(item) for item in _server_messages(response))
    return _DIGIT_RUN.sub(lambda match: mask_phone(match.group()), text)[:_MAX_DETAIL_CHARS]


def _retry_after_seconds(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now` (unix seconds); it may be seconds or an HTTP date."""
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return max(float(value), 0.0)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


# --- bodies -------------------------------------------------------------------------------


def _parse_sent(answer: HttpAnswer) -> SentText:
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


def _parse_stored(body: Any) -> list[StoredMessage]:
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


def _parse_connection_state(body: Any, instance: str) -> InstanceState:
    inner = body.get("instance") if isinstance(body, dict) else None
    state = inner.get("state") if isinstance(inner, dict) else None
    if not isinstance(state, str) or not state:
        raise TransientEvolutionError(
            f"instance {instance!r}: connectionState answer has no state", instance=instance
        )
    return InstanceState(name=instance, state=state, disconnection_reason=None, number=None)


def _parse_instances(body: Any) -> list[InstanceState]:
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
