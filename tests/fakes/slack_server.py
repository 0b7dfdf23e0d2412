"""A fake Slack Web API on 127.0.0.1: `chat.postMessage` only, with failure knobs.

    with running_fake_slack() as slack:
        client = WebClient(token=slack.token, base_url=slack.base_url)
        slack.mode = "http_500"      # or "ok", "reset" (drop the connection), "invalid_auth"
        slack.rate_limit_next(1)     # the next call answers 429 with Retry-After: 0
        slack.messages               # every accepted message: {"channel", "text", ...}

Any process can reach `base_url` (e.g. a Celery worker subprocess given SLACK_API_URL).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

TOKEN = "xoxb-fake-token"


class FakeSlack:
    def __init__(self, server: ThreadingHTTPServer) -> None:
        host, port = server.server_address[:2]
        self.base_url = f"http://{host!s}:{port}/api/"
        self.token = TOKEN
        self.mode = "ok"
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self._rate_limited = 0
        self._lock = threading.Lock()

    def rate_limit_next(self, count: int) -> None:
        with self._lock:
            self._rate_limited = count

    def texts(self) -> list[str]:
        with self._lock:
            return [str(m.get("text", "")) for m in self.messages]

    def answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        """(status, JSON body), or (0, None) to drop the connection."""
        with self._lock:
            self.requests += 1
            if self._rate_limited > 0:
                self._rate_limited -= 1
                return 429, {"ok": False, "error": "ratelimited"}
            if self.mode == "reset":
                return 0, None
            if self.mode == "http_500":
                return 500, {"ok": False, "error": "internal_error"}
            if self.mode == "invalid_auth" or headers.get("authorization") != f"Bearer {TOKEN}":
                return 200, {"ok": False, "error": "invalid_auth"}
            if not path.endswith("/chat.postMessage"):
                return 200, {"ok": False, "error": "unknown_method"}
            self.messages.append(body)
            return 200, {
                "ok": True,
                "channel": body.get("channel"),
                "ts": f"{len(self.messages)}.0",
            }


def _handler(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = fake.answer(self.path, headers, _decode(raw, headers))
            if status == 0:
                self.close_connection = True
                self.connection.close()
                return
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if status == 429:
                self.send_header("retry-after", "0")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


def _decode(raw: str, headers: dict[str, str]) -> dict[str, Any]:
    if "json" in headers.get("content-type", ""):
        return dict(json.loads(raw or "{}"))
    return {k: v[0] for k, v in parse_qs(raw).items()}


@contextlib.contextmanager
def running_fake_slack() -> Iterator[FakeSlack]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    fake = FakeSlack(server)
    server.RequestHandlerClass = _handler(fake)
    thread = threading.Thread(target=server.serve_forever, name="fake-slack", daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
