"""A small Chrome DevTools Protocol client over `--remote-debugging-pipe` (no dependency).

Chromium reads NUL-terminated JSON commands from fd 3 and writes replies and events to fd 4.
One page target, attached in flat mode; `evaluate` runs JavaScript in it and returns the
value; `wait_for` polls an expression until it is truthy (a real browser runs on real time:
the test waits on a condition with a deadline, it never sleeps a fixed time).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,900",
]


class CdpError(RuntimeError):
    pass


class Browser:
    def __init__(self, binary: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        stderr = (profile / "chromium.log").open("wb")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def wire_fds() -> None:  # in the child: its fd 3 reads commands, fd 4 writes replies
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            pass_fds=(3, 4, to_child_r, from_child_w),  # 3, 4: kept after wire_fds
            preexec_fn=wire_fds,  # noqa: PLW1509 - single-threaded fd wiring only
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.send("Page.enable", session=True)
        self.send("Runtime.enable", session=True)

    def post(self, method: str, *, session: bool = False, **params: Any) -> int:
        """Send a command without waiting for its reply; returns its id."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        return self._next_id

    def send(self, method: str, *, session: bool = False, **params: Any) -> dict[str, Any]:
        wanted = self.post(method, session=session, **params)
        while True:
            reply = self._read()
            if "method" in reply:  # an event: its handler may post commands
                handler = self.handlers.get(reply["method"])
                if handler is not None:
                    handler(reply.get("params", {}))
                continue
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise CdpError("chromium closed the pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        return dict(json.loads(raw))

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise CdpError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def intercept(self, answers: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Answer, in the browser before they leave, the requests whose URL contains a key
        of `answers` (the longest matching key wins) with 200 and that key's JSON body;
        returns the list the requests (url, method, headers, postData) are appended to."""
        seen: list[dict[str, Any]] = []

        def answer(params: dict[str, Any]) -> None:
            request = params["request"]
            seen.append(request)
            key = max((k for k in answers if k in request["url"]), key=len)
            self.post(
                "Fetch.fulfillRequest",
                session=True,
                requestId=params["requestId"],
                responseCode=200,
                responseHeaders=[{"name": "Content-Type", "value": "application/json"}],
                body=base64.b64encode(json.dumps(answers[key]).encode()).decode(),
            )

        self.handlers["Fetch.requestPaused"] = answer
        patterns = [{"urlPattern": f"*{key}*"} for key in answers]
        self.send("Fetch.enable", session=True, patterns=patterns)
        return seen

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(CdpError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)
