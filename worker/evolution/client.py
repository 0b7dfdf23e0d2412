"""Clients for the Evolution API v2.

`EvolutionClient` (sync) sends messages from Celery workers; `AsyncEvolutionClient` polls
connection states for the health check. Both convert every failure into the exceptions of
`worker.evolution.errors` in one place (`worker.evolution.answers.to_error`); the bodies of
successful answers are read by `worker.evolution.bodies`. The API key travels only in the
`apikey` header and is never logged or put in a message; phone numbers are masked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from worker.evolution.answers import has_envelope, to_error, unexpected, where
from worker.evolution.bodies import (
    InstanceState,
    SentText,
    StoredMessage,
    parse_connection_state,
    parse_instances,
    parse_sent,
    parse_stored,
)
from worker.evolution.errors import LookUpUnavailable, SendOutcomeUnknown
from worker.evolution.exchange import (
    Exchange,
    ExchangeFailed,
    HttpAnswer,
    HttpxExchange,
    Timeouts,
)
from worker.evolution.keepalive import KeepAliveHTTP

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
USER_AGENT = "zapdispatch"
"""Seconds: 5 to connect, 15 for each read/write/pool wait."""

#: Messages asked for per findMessages page (Evolution's `offset`); newest first.
LOOK_UP_PAGE = 50


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
                    f"{where(instance, number)}: {exc.kind} after the request was written",
                    instance=instance,
                ) from exc
            raise to_error(exc, instance, number) from exc
        if 200 <= answer.status < 300:
            return parse_sent(answer)
        if answer.status >= 500 and not has_envelope(answer):
            raise SendOutcomeUnknown(
                f"{where(instance, number)}: HTTP {answer.status} without Evolution's "
                "error body (a proxy answered)",
                instance=instance,
                status_code=answer.status,
            )
        raise to_error(answer, instance, number)

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
                f"{where(instance, number)}: findMessages answered HTTP {answer.status}",
                instance=instance,
                status_code=answer.status,
            )
        try:
            return parse_stored(answer.json())
        except ValueError as exc:
            raise LookUpUnavailable(
                f"{where(instance, number)}: findMessages answer unreadable ({exc})",
                instance=instance,
            ) from exc

    def connection_state(self, instance: str) -> InstanceState:
        """The state of one instance (no number or reason: this endpoint lacks them)."""
        with _at_edge(instance):
            answer = self._http.exchange("GET", _state_path(instance), None)
        return parse_connection_state(_ok_json(answer, instance), instance)

    def fetch_instances(self) -> list[InstanceState]:
        """Every instance the server knows, in one call (needs the global key)."""
        with _at_edge(None):
            answer = self._http.exchange("GET", "/instance/fetchInstances", None)
        return parse_instances(_ok_json(answer, None))

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
        return parse_connection_state(_ok_json(answer, instance), instance)

    async def fetch_instances(self) -> list[InstanceState]:
        """Every instance the server knows, in one call (needs the global key)."""
        with _at_edge(None):
            response = await self._http.get("/instance/fetchInstances")
        return parse_instances(_ok_json(HttpAnswer.from_httpx(response), None))

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
        raise to_error(exc, instance, number) from exc


def _ok_json(
    response: HttpAnswer,
    instance: str | None,
    number: str | None = None,
    *,
    ok: frozenset[int] = frozenset({200}),
) -> Any:
    """The decoded body of a successful answer; raise the mapped error otherwise."""
    if response.status not in ok:
        raise to_error(response, instance, number)
    try:
        return response.json()
    except ValueError as exc:
        raise unexpected(response, instance, "body is not JSON") from exc
