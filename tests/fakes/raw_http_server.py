"""A loopback TCP server that answers each HTTP request with bytes the test scripts.

For the edges of `worker/evolution/keepalive.py` that a real server rarely shows on demand:
chunked bodies, `Connection: close`, answers cut short, silence, idle connections closed by
the server. It counts connections and requests, so a test can tell reuse from reconnects
and prove a request was never written twice.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

#: What to do with one request: the bytes to answer with, or None to close without a word.
Reply = Callable[[bytes], bytes | None]


def answer(
    status: int = 201, body: bytes = b'{"ok":true}', headers: dict[str, str] | None = None
) -> bytes:
    """A plain HTTP/1.1 answer with a Content-Length."""
    lines = [f"HTTP/1.1 {status} X", f"content-length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class RawHttpServer:
    reply: Reply
    tls: ssl.SSLContext | None = None
    #: Seconds an accepted connection may sit idle before the server closes it (None: never).
    idle_close_seconds: float | None = None
    #: Close each connection right after its first answer (a body cut short stays short).
    close_after_answer: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    _sock: socket.socket | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _open: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self._sock is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://localhost:{self._sock.getsockname()[1]}"

    def start(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def close_idle_connections(self) -> None:
        """Close every connection from the server side, as a keep-alive timeout would."""
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def stop(self) -> None:
        self.close_idle_connections()
        if self._sock is not None:
            self._sock.close()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()
                    continue
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(self.idle_close_seconds)
        reader = conn.makefile("rb")
        with contextlib.suppress(OSError, ValueError):
            while request := _read_request(reader):
                with self._lock:
                    self.requests.append(request)
                out = self.reply(request)
                if out is None:
                    break
                conn.sendall(out)
                if self.close_after_answer:
                    break
        with contextlib.suppress(OSError):
            conn.close()


def _read_request(reader: BinaryIO) -> bytes:
    """One request (head and Content-Length body), or b"" at EOF."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline()
        if not line:
            return b""
        head += line
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head + reader.read(length)


@contextlib.contextmanager
def raw_http_server(reply: Reply, **options: object) -> Iterator[RawHttpServer]:
    server = RawHttpServer(reply, **options)  # type: ignore[arg-type]
    server.start()
    try:
        yield server
    finally:
        server.stop()
