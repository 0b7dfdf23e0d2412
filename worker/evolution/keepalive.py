"""Keep-alive HTTP to one origin for the send path, on the standard library's `http.client`.

One persistent connection per thread and pool key (the client uses the instance name), so a
worker thread sending through a number reuses its connection and never shares it. Each
exchange has one total deadline (connect + write + read, `Timeouts.total`): the socket's
timeout is set to what is left before each phase.

What matters most is *where* an exchange failed, because it decides whether a send may have
happened (`ExchangeFailed.phase`):
- `connect`: no connection (refused, unreachable, TLS handshake or certificate refused):
  the request was never written;
- `write`: the request was not fully written: Evolution cannot have acted on it;
- `read`: the request was written and no whole answer came back (timeout, reset, a
  malformed answer): the message may or may not have gone out.

A reused connection is dropped before use when it has been idle for `idle_expiry_seconds`
(below Node.js's 5 s keep-alive default, which Evolution runs on) or when the server has
closed it (readable EOF), so that a request is not written into a connection the server is
closing. Certificates are verified (`ssl.create_default_context()`). No proxies, cookies,
redirects or compression: Evolution needs none.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from worker.evolution.exchange import ExchangeFailed, HttpAnswer, Timeouts

#: Largest answer body read (bytes); a bigger one is a protocol error.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Seconds an idle connection is trusted; Node.js servers close them after 5 s by default.
IDLE_EXPIRY_SECONDS = 4.0


@dataclass(slots=True)
class _Kept:
    conn: http.client.HTTPConnection
    idle_since: float


class KeepAliveHTTP:
    """HTTP/1.1 exchanges with the origin of `base_url` (http or https; its path is a
    prefix of every request path). `headers` go with every request."""

    def __init__(
        self,
        base_url: str,
        headers: Sequence[tuple[str, str]],
        timeouts: Timeouts,
        *,
        ssl_context: ssl.SSLContext | None = None,
        idle_expiry_seconds: float = IDLE_EXPIRY_SECONDS,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"EVOLUTION_API_URL must be an http(s) URL, got {url.scheme!r}")
        for name, value in headers:
            # A CR or LF in a value would split the request: refused at start-up, not sent.
            if not name or any(ch in name + value for ch in "\r\n\0"):
                raise ValueError(f"invalid HTTP header {name!r}")
        self._host = url.hostname
        self._port = url.port
        self._tls = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        self._headers = dict(headers)
        self._timeouts = timeouts
        self._expiry = idle_expiry_seconds
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def exchange(self, method: str, path: str, body: bytes | None, *, key: str = "") -> HttpAnswer:
        target = self._prefix + path
        if not target.startswith("/") or any(ch in target for ch in " \r\n\t"):
            raise ValueError(f"invalid request target {target!r}")
        deadline = time.monotonic() + self._timeouts.total
        conn = self._ready(key, deadline)
        headers = dict(self._headers)
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            conn.sock.settimeout(_left(deadline))
            conn.request(method, target, body=body, headers=headers)
        except (OSError, http.client.HTTPException) as exc:
            self._drop(key, conn)
            kind = "WriteTimeout" if isinstance(exc, TimeoutError) else "WriteError"
            raise ExchangeFailed(kind, str(exc), phase="write") from exc
        return self._answer(key, conn, deadline, head_only=method == "HEAD")

    def close(self) -> None:
        with self._lock:
            kept, self._all = self._all, []
        for conn in kept:
            conn.close()

    # -- connections --------------------------------------------------------------------
    def _ready(self, key: str, deadline: float) -> http.client.HTTPConnection:
        """This thread's connection for `key`, fit for a request, connected."""
        pool: dict[str, _Kept] = self._local.__dict__.setdefault("pool", {})
        kept = pool.get(key)
        now = time.monotonic()
        if kept is not None and kept.conn.sock is not None:
            if now - kept.idle_since < self._expiry and not _readable(kept.conn.sock):
                return kept.conn
            kept.conn.close()  # expired, or the server closed it (EOF) or sent something
        conn = kept.conn if kept is not None else self._new_connection()
        pool[key] = _Kept(conn, now)
        conn.timeout = min(self._timeouts.connect, _left(deadline))
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            kind = "ConnectTimeout" if isinstance(exc, TimeoutError) else "ConnectError"
            raise ExchangeFailed(kind, str(exc), phase="connect") from exc
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _new_connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._tls is not None:
            conn = http.client.HTTPSConnection(self._host, self._port, context=self._tls)
        else:
            conn = http.client.HTTPConnection(self._host, self._port)
        with self._lock:
            self._all.append(conn)
        return conn

    def _answer(
        self, key: str, conn: http.client.HTTPConnection, deadline: float, *, head_only: bool
    ) -> HttpAnswer:
        """Read the answer to the request just written, within `deadline`."""
        sock = conn.sock
        try:
            sock.settimeout(_left(deadline))
            response = conn.getresponse()  # hands the socket to the response when closing
            sock.settimeout(_left(deadline))
            if response.length is not None and response.length > MAX_BODY_BYTES:
                raise http.client.HTTPException(f"body over {MAX_BODY_BYTES} bytes")
            body = b"" if head_only else response.read()  # a short body: IncompleteRead
        except (OSError, http.client.HTTPException) as exc:
            self._drop(key, conn)
            raise ExchangeFailed(_read_failure(exc), str(exc), phase="read") from exc
        if len(body) > MAX_BODY_BYTES:
            self._drop(key, conn)
            raise ExchangeFailed(
                "RemoteProtocolError", f"body over {MAX_BODY_BYTES} bytes", phase="read"
            )
        headers: dict[str, str] = {}
        for name, value in response.getheaders():
            low = name.lower()
            headers[low] = f"{headers[low]}, {value}" if low in headers else value
        if response.will_close:
            self._drop(key, conn)
        else:
            self._local.pool[key].idle_since = time.monotonic()
        return HttpAnswer(response.status, headers, body)

    def _drop(self, key: str, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.__dict__.get("pool", {}).pop(key, None)
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)


def _left(deadline: float) -> float:
    """Seconds left before `deadline`, at least a millisecond (a zero timeout would make
    the socket non-blocking instead of failing)."""
    return max(deadline - time.monotonic(), 0.001)


def _read_failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "ReadTimeout"
    if isinstance(exc, http.client.HTTPException) and not isinstance(
        exc, http.client.RemoteDisconnected
    ):
        return "RemoteProtocolError"
    return "ReadError"


def _readable(sock: socket.socket) -> bool:
    """True when an idle connection has something to read: the server's EOF or reset."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))
