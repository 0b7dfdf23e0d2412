"""The status page shows what is paused and since when, and offers the matching button."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from config import Settings
from tests.browser.test_page import Dom, chromium, page_url, run_chromium
from tests.integration.api_support import NOW, open_resources, seeded_app
from worker.controls import Controls
from worker.resources import build_resources

pytestmark = pytest.mark.browser
__all__ = ["page_url"]


def test_page_shows_pauses_and_the_resume_button(
    page_url: str, settings: Settings, tmp_path: Path
) -> None:
    res = build_resources(settings)
    try:
        controls = Controls(res.pauses, res.instances, res.limiter.now)
        controls.pause()
        controls.pause(instance="inst-a")
    finally:
        res.close()
    dom = Dom()
    dom.feed(run_chromium(chromium(), tmp_path / "profile", "--dump-dom", page_url))
    assert dom.one(tag="body")["data-state"] == "ready"
    text = dom.one(id="pause-state")["text"]
    assert text.startswith("paused: all sending since ") and "; instance inst-a since " in text
    assert dom.one(**{"data-action": "resume-all"}) and dom.one(**{"data-action": "pause-all"})
    rows = {row["data-name"]: row for row in dom.find(tag="tr", **{"class": "instance"})}
    assert dom.one(**{"data-name": "inst-a"}, tag="tr") is rows["inst-a"]
    available = dom.find(tag="td", **{"class": "available"})
    assert available[0]["text"] == "paused" and available[1]["text"] != "paused"


def test_page_shows_warmup_day_and_effective_caps(
    settings: Settings, redis_client: Any, tmp_path: Path
) -> None:
    """inst-a (10/h, 100/d) on day 1 of a 20-a-day ramp: its bars count against 2/h, 20/d."""
    warm = settings.model_copy(update={"warmup_schedule": "20,40"})
    res = open_resources(warm, redis_client)
    seeded = seeded_app(res)
    res.instances.restart_warmup("inst-a", NOW)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(seeded.app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        dom = Dom()
        dom.feed(run_chromium(chromium(), tmp_path / "profile", "--dump-dom", url))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        res.close()
    row = dom.one(tag="tr", **{"data-name": "inst-a"})
    assert "warm-up day 1" in row["text"]
    assert dom.find(**{"class": "bar-hour"})[0]["text"] == "3/2"
    assert dom.find(**{"class": "bar-day"})[0]["text"] == "3/20"
