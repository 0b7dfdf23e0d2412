"""The status page shows what is paused and since when, and offers the matching button."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from tests.browser.test_page import Dom, chromium, page_url, run_chromium
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
    text = dom.one(id="pause-text")["text"]
    assert text.startswith("paused: all sending since ") and "; instance inst-a since " in text
    assert "hidden" in dom.one(id="pause-all") and "hidden" not in dom.one(id="resume-all")
    rows = {row["data-name"]: row for row in dom.find(tag="tr", **{"class": "instance"})}
    assert dom.one(**{"data-name": "inst-a"}, tag="tr") is rows["inst-a"]
    available = dom.find(tag="td", **{"class": "available"})
    assert available[0]["text"] == "paused" and available[1]["text"] != "paused"
