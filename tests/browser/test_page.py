"""The status page in headless Chromium against seeded data: what it shows, plus a screenshot.

Chromium runs the page's JavaScript (`--virtual-time-budget`), then `--dump-dom` prints the
resulting DOM, which the test parses. The screenshot goes to $ZD_ARTIFACTS or
tests/artifacts/. Without Chromium the test skips on a laptop and fails in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import redis
import uvicorn

from config import Settings
from tests.integration.api_support import open_resources, seeded_app
from tests.support.services import ROOT, require

pytestmark = pytest.mark.browser

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
]
VIRTUAL_TIME_MS = 5000
CHROMIUM_TIMEOUT_SECONDS = 90


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    require(found is not None, "chromium (apt-get install -y chromium)")
    assert found is not None
    return found


def artifacts_dir() -> Path:
    path = Path(os.environ.get("ZD_ARTIFACTS") or ROOT / "tests" / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page_url(settings: Settings, redis_client: redis.Redis) -> Iterator[str]:
    """The seeded API served by uvicorn on a free loopback port, in a background thread."""
    res = open_resources(settings, redis_client)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(seeded_app(res).app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        res.close()


def run_chromium(binary: str, profile: Path, *args: str) -> str:
    result = subprocess.run(
        [
            binary,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={VIRTUAL_TIME_MS}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


class Dom(HTMLParser):
    """Just enough of the DOM: elements by id/class/data-*, and the text inside them."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[dict[str, str]] = []
        self.elements: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(element)
        if tag not in {"meta", "link", "br", "img", "input"}:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        if self.stack and self.stack[-1]["tag"] == tag:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element["text"] += data

    def find(self, **attrs: str) -> list[dict[str, Any]]:
        return [
            e
            for e in self.elements
            if all(
                key in e and (value in e[key].split() if key == "class" else e[key] == value)
                for key, value in attrs.items()
            )
        ]

    def one(self, **attrs: str) -> dict[str, Any]:
        found = self.find(**attrs)
        assert len(found) == 1, (attrs, found)
        return found[0]


def test_page_shows_instances_loads_and_alerts(page_url: str, tmp_path: Path) -> None:
    binary = chromium()
    dom = Dom()
    dom.feed(run_chromium(binary, tmp_path / "profile", "--dump-dom", page_url))
    assert dom.one(tag="body")["data-state"] == "ready", dom.one(tag="body")
    assert dom.one(id="overall-status")["text"] == "healthy"
    rows = {row["data-name"]: row for row in dom.find(tag="tr", **{"class": "instance"})}
    assert list(rows) == ["inst-a", "inst-b", "inst-c", "inst-d"]
    assert rows["inst-a"]["text"].startswith("🟢inst-a")
    assert rows["inst-c"]["text"].startswith("⛔inst-c")
    assert rows["inst-d"]["text"].startswith("🔴inst-d")
    hour_bars = dom.find(**{"class": "bar-hour"})
    assert [bar["text"] for bar in hour_bars] == ["3/10", "0/20", "0/30", "0/40"]
    assert dom.find(**{"class": "bar-day"})[0]["text"] == "3/100"
    assert hour_bars[0]["title"] == "30.0%"
    assert "30.0%" in rows["inst-a"]["text"]
    assert [cell["text"] for cell in dom.find(**{"class": "delivered"})] == ["–"] * 4  # no receipt
    alerts = dom.find(tag="li", **{"class": "alert"})
    assert len(alerts) == 1 and "Instance inst-c BANNED" in alerts[0]["text"]
    assert dom.one(id="alert-count")["text"] == "(1)"
    assert "sent today" in dom.one(id="summary")["text"]

    screenshot = artifacts_dir() / "status-page.png"
    screenshot.unlink(missing_ok=True)
    run_chromium(
        binary,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1280,900",
        page_url,
    )
    assert screenshot.stat().st_size > 10_000
