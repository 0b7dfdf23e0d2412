"""A webhook receiver on a loopback port that records every POST (path, headers, JSON body)
and answers the status a test sets (200 by default)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class WebhookSink:
    url: str
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def events(self) -> list[tuple[str, Any]]:
        with self.lock:
            return [(r.body["event"], r.body["data"]) for r in self.received]

    def wait_for(self, test: Callable[[list[Received]], bool], timeout: float = 10.0) -> None:
        """Wait (polling, real time: the simulator sends on its own clock) until `test`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if test(list(self.received)):
                    return
            time.sleep(0.02)
        raise AssertionError(f"webhooks not received in {timeout} s: {self.events()}")


@contextlib.contextmanager
def running_webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length", "0")))
            with sink.lock:
                sink.received.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(raw)
                    )
                )
                status = sink.statuses.pop(0) if sink.statuses else 200
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sink.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
