"""Keep-alive HTTP/1.1 to one origin, for the send path's small JSON exchanges.

Why not httpx here: a send is one small POST and one small JSON answer, and httpx's
request/response models, httpcore's pool and h11's state machine cost about 5 times the
CPU of the exchange itself (800 against 150 µs per send on the 2-core bench machine,
docs/benchmarks.md). This module does only what a send needs: a pool of persistent
connections (plain TCP or TLS), requests written in one `sendall`, answers read by
Content-Length, chunked encoding or connection close. No proxies, cookies, redirects,
compression or HTTP/2. The health check keeps httpx (`AsyncEvolutionClient`).

Connections are reused last-in first-out. One idle for `idle_expiry_seconds` (below
Node.js's 5 s keep-alive default, which Evolution runs on) or closed by the server is
dropped before use. A request whose write fails on a reused connection is written once more
on a new one: the server had closed it, so it never saw the request. Anything that fails
after the request was written is raised, never repeated: a send must not be doubled here.
Thread-safe: the pool is a deque (atomic `pop`/`append`); each connection has one user.
"""

from __future__ import annotations

import collections
import select
import socket
import ssl
import time
from collections.abc import Sequence
from typing import BinaryIO
from urllib.parse import SplitResult, urlsplit

from worker.evolution.exchange import ExchangeFailed, HttpAnswer, Timeouts

#: Longest status or header line, most header lines, and largest body we read (bytes).
MAX_LINE_BYTES = 65_536
MAX_HEADERS = 100
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Idle connections kept per pool; more are closed when returned.
MAX_IDLE = 32
#: Seconds an idle connection is trusted; Node.js servers close them after 5 s by default.
IDLE_EXPIRY_SECONDS = 4.0

_NO_BODY_STATUSES = frozenset({204, 304})


class _Connection:
    __slots__ = ("idle_since", "reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")
        self.idle_since = 0.0

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


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
        max_idle: int = MAX_IDLE,
        idle_expiry_seconds: float = IDLE_EXPIRY_SECONDS,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"EVOLUTION_API_URL must be an http(s) URL, got {url.scheme!r}")
        self._host = url.hostname
        self._port = url.port or (443 if url.scheme == "https" else 80)
        self._tls = (ssl_context or ssl.create_default_context()) if url.scheme == "https" else None
        self._prefix = url.path.rstrip("/")
        self._fixed_headers = _header_block([("host", _host_header(url)), *headers])
        self._timeouts = timeouts
        self._idle: collections.deque[_Connection] = collections.deque()
        self._max_idle = max_idle
        self._expiry = idle_expiry_seconds
        self._closed = False

    def exchange(self, method: str, path: str, body: bytes | None) -> HttpAnswer:
        request = self._request_bytes(method, path, body)
        conn = self._write_request(request)
        try:
            answer, reusable = _read_answer(conn.reader, head_only=method == "HEAD")
        except BaseException:
            conn.close()
            raise
        self._checkin(conn, reusable)
        return answer

    def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    # -- connections ------------------------------------------------------------------------
    def _write_request(self, request: bytes) -> _Connection:
        """A connection that has the whole request written to it."""
        conn = self._reused()
        if conn is not None:
            try:
                conn.sock.sendall(request)
                return conn
            except OSError:  # closed by the server while idle: it never saw the request
                conn.close()
        conn = self._connect()
        try:
            conn.sock.sendall(request)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, TimeoutError):
                raise ExchangeFailed("WriteTimeout", str(exc)) from exc
            if isinstance(exc, OSError):
                raise ExchangeFailed("WriteError", str(exc)) from exc
            raise
        return conn

    def _reused(self) -> _Connection | None:
        """The most recently used idle connection that is still fit for a request."""
        now = time.monotonic()
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return None
            if now - conn.idle_since < self._expiry and not _readable(conn.sock):
                return conn
            conn.close()  # expired, or the server closed it (EOF) or sent something unasked

    def _connect(self) -> _Connection:
        try:
            sock = socket.create_connection((self._host, self._port), self._timeouts.connect)
        except TimeoutError as exc:
            raise ExchangeFailed("ConnectTimeout", str(exc)) from exc
        except OSError as exc:
            raise ExchangeFailed("ConnectError", str(exc)) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self._timeouts.read)
        except BaseException as exc:
            sock.close()
            if isinstance(exc, TimeoutError):
                raise ExchangeFailed("ConnectTimeout", str(exc)) from exc
            if isinstance(exc, OSError):  # ssl.SSLError included
                raise ExchangeFailed("ConnectError", str(exc)) from exc
            raise
        return _Connection(sock)

    def _checkin(self, conn: _Connection, reusable: bool) -> None:
        if not reusable or self._closed or len(self._idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)

    def _request_bytes(self, method: str, path: str, body: bytes | None) -> bytes:
        target = self._prefix + path
        if not target.startswith("/") or any(ch in target for ch in " \r\n\t"):
            raise ValueError(f"invalid request target {target!r}")
        start = f"{method} {target} HTTP/1.1\r\n".encode("ascii")
        if body is None:
            return start + self._fixed_headers + b"\r\n"
        length = b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        return start + self._fixed_headers + length + body


# -- requests --------------------------------------------------------------------------------


def _host_header(url: SplitResult) -> str:
    """`host[:port]` as the request's Host header (IPv6 literals bracketed)."""
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{url.port}" if url.port else host


def _header_block(headers: Sequence[tuple[str, str]]) -> bytes:
    """`name: value\\r\\n` lines; a CR or LF in a value would split the request, so it is
    refused here, at start-up, rather than sent."""
    lines = []
    for name, value in headers:
        if any(ch in name + value for ch in "\r\n\0") or not name:
            raise ValueError(f"invalid HTTP header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines).encode("latin-1")


def _readable(sock: socket.socket) -> bool:
    """True when an idle connection has something to read: the server's EOF or reset."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


# -- answers ---------------------------------------------------------------------------------


def _read_answer(reader: BinaryIO, *, head_only: bool) -> tuple[HttpAnswer, bool]:
    """The answer to the request just written, and whether the connection can be reused."""
    try:
        status, version = _read_status(reader)
        while 100 <= status < 200:  # interim answers (100 Continue) carry no body
            _read_headers(reader)
            status, version = _read_status(reader)
        headers = _read_headers(reader)
        no_body = head_only or status in _NO_BODY_STATUSES
        body, delimited = _read_body(reader, headers, no_body=no_body)
    except TimeoutError as exc:
        raise ExchangeFailed("ReadTimeout", str(exc)) from exc
    except OSError as exc:
        raise ExchangeFailed("ReadError", str(exc)) from exc
    return HttpAnswer(status, headers, body), delimited and _keep_alive(version, headers)


def _read_status(reader: BinaryIO) -> tuple[int, str]:
    line = _read_line(reader)
    if not line:
        raise ExchangeFailed("RemoteProtocolError", "server disconnected without answering")
    version, _, rest = line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ExchangeFailed("RemoteProtocolError", "malformed status line")
    return int(code), version.decode("ascii", "replace")


def _read_headers(reader: BinaryIO) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = _read_line(reader)
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.partition(b":")
        if not sep or not name or name[:1].isspace():
            raise ExchangeFailed("RemoteProtocolError", "malformed header line")
        key = name.decode("latin-1").strip().lower()
        text = value.decode("latin-1").strip()
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    raise ExchangeFailed("RemoteProtocolError", f"more than {MAX_HEADERS} header lines")


def _read_line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE_BYTES + 1)
    if len(line) > MAX_LINE_BYTES:
        raise ExchangeFailed("RemoteProtocolError", "line too long")
    if line and not line.endswith(b"\n"):
        raise ExchangeFailed("RemoteProtocolError", "connection closed mid-line")
    return line


def _read_body(reader: BinaryIO, headers: dict[str, str], *, no_body: bool) -> tuple[bytes, bool]:
    """The body, and whether its end was marked (so the connection is still in step)."""
    if no_body:
        return b"", True
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(reader), True
    length = headers.get("content-length")
    if length is not None:
        return _read_exactly(reader, _content_length(length)), True
    return _read_until_close(reader), False


def _content_length(value: str) -> int:
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1 or not (only := values.pop()).isdigit():
        raise ExchangeFailed("RemoteProtocolError", f"bad content-length {value!r}")
    if int(only) > MAX_BODY_BYTES:
        raise ExchangeFailed("RemoteProtocolError", f"body over {MAX_BODY_BYTES} bytes")
    return int(only)


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    data = reader.read(size)
    if len(data) != size:
        raise ExchangeFailed("RemoteProtocolError", "connection closed mid-body")
    return data


def _read_chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size_field = _read_line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ExchangeFailed("RemoteProtocolError", "bad chunk size") from None
        if size == 0:
            _read_headers(reader)  # trailers, up to the blank line
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise ExchangeFailed("RemoteProtocolError", f"body over {MAX_BODY_BYTES} bytes")
        parts.append(_read_exactly(reader, size))
        if _read_line(reader) not in (b"\r\n", b"\n"):
            raise ExchangeFailed("RemoteProtocolError", "chunk not followed by CRLF")


def _read_until_close(reader: BinaryIO) -> bytes:
    data = reader.read(MAX_BODY_BYTES + 1)
    if len(data) > MAX_BODY_BYTES:
        raise ExchangeFailed("RemoteProtocolError", f"body over {MAX_BODY_BYTES} bytes")
    return data


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    if version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens
