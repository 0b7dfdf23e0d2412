"""One HTTP request/response exchange with the Evolution API, behind a small protocol.

`EvolutionClient` needs only this: send a request with a small body, get the whole answer
back. Two implementations:

- `worker.evolution.keepalive.KeepAliveHTTP`: the default for sends; the standard
  library's `http.client`, one kept-alive connection per thread and instance;
- `HttpxExchange`: any httpx transport, e.g. `httpx.MockTransport` in the tests.

Both raise `ExchangeFailed` for anything that is not an HTTP answer (timeouts, refused or
reset connections, malformed responses); `EvolutionClient` turns it into the boundary's own
exceptions, once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A whole HTTP answer. `headers` has lower-case names."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON; raises ValueError when it is not JSON."""
        return json.loads(self.body)

    @classmethod
    def from_httpx(cls, response: httpx.Response) -> HttpAnswer:
        return cls(response.status_code, dict(response.headers.items()), response.content)


Phase = Literal["connect", "write", "read"]


class ExchangeFailed(Exception):
    """No HTTP answer. `kind` names the failure as httpx does (`ConnectTimeout`,
    `ConnectError`, `ReadTimeout`, `WriteTimeout`, `ReadError`, `WriteError`,
    `RemoteProtocolError`); the message never holds the request body.

    `phase` says how far the exchange got: `connect` and `write` prove the server never had
    the whole request; after `read` it may have acted on it."""

    def __init__(self, kind: str, detail: str = "", *, phase: Phase = "read") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.phase: Phase = phase

    @property
    def request_written(self) -> bool:
        """Whether the server may have received the whole request."""
        return self.phase == "read"


class Exchange(Protocol):
    def exchange(self, method: str, path: str, body: bytes | None, *, key: str = "") -> HttpAnswer:
        """Send `method path` (path relative to the base URL) and read the whole answer;
        `key` names the connection to use (one per instance)."""

    def close(self) -> None:
        """Close every connection."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds: at most `connect` to connect, and `connect + read` for the whole exchange
    (connect, write and read together)."""

    connect: float
    read: float

    @property
    def total(self) -> float:
        """The deadline of one exchange, seconds."""
        return self.connect + self.read

    @classmethod
    def from_httpx(cls, timeout: httpx.Timeout) -> Timeouts:
        connect = timeout.connect if timeout.connect is not None else timeout.read
        read = timeout.read if timeout.read is not None else 3600.0
        return cls(connect=connect if connect is not None else read, read=read)


def httpx_phase(exc: httpx.HTTPError) -> Phase:
    """How far an httpx exchange got before `exc`."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return "connect"
    if isinstance(exc, httpx.WriteError | httpx.WriteTimeout):
        return "write"
    return "read"


class HttpxExchange:
    """Exchanges through an httpx transport (the tests inject `httpx.MockTransport`)."""

    def __init__(
        self,
        base_url: str,
        headers: Sequence[tuple[str, str]],
        timeout: httpx.Timeout,
        transport: httpx.BaseTransport,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = list(headers)
        self._extensions = {"timeout": timeout.as_dict()}
        self._transport = transport

    def exchange(self, method: str, path: str, body: bytes | None, *, key: str = "") -> HttpAnswer:
        headers = self._headers
        if body is not None:
            headers = [*headers, ("content-type", "application/json")]
        request = httpx.Request(
            method,
            self._base_url + path,
            headers=headers,
            content=body,
            extensions=self._extensions,
        )
        try:
            response = self._transport.handle_request(request)
            try:
                response.read()
            finally:
                response.close()
        except httpx.HTTPError as exc:
            raise ExchangeFailed(type(exc).__name__, str(exc), phase=httpx_phase(exc)) from exc
        return HttpAnswer.from_httpx(response)

    def close(self) -> None:
        self._transport.close()
