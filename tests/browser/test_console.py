"""The console behind API_TOKEN, driven in headless Chromium over the DevTools protocol:
signed out → the form; a wrong token → a clear message; the right token → data; sign out.
Screenshots go to $ZD_ARTIFACTS or tests/artifacts/."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from pydantic import SecretStr

from config import Settings
from models.chart_store import ChartStore
from tests.browser.cdp import Browser
from tests.browser.serve import served
from tests.browser.test_page import artifacts_dir, chromium
from tests.integration.api_support import NOW, T0, Seeded, open_resources, seeded_app
from tests.integration.test_messages_api import record
from worker.api import create_app, deps_from_resources
from worker.delivery import Dispatcher, Result
from worker.evolution import EvolutionClient
from worker.message_input import validate
from worker.resources import build_resources

pytestmark = pytest.mark.browser

TOKEN = "console-s3cret"


@pytest.fixture
def seeded(settings: Settings, redis_client: redis.Redis) -> Iterator[Seeded]:
    res = open_resources(settings, redis_client)
    try:
        yield seeded_app(res)
    finally:
        res.close()


@pytest.fixture
def locked_url(seeded: Seeded, settings: Settings) -> Iterator[str]:
    """The seeded API with API_TOKEN set."""
    locked = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    deps = deps_from_resources(seeded.res)
    app = create_app(type(deps)(**{**deps.__dict__, "settings": locked}))
    with served(app) as url:
        yield url


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(chromium(), tmp_path / "profile")
    try:
        yield b
    finally:
        b.close()


def sign_in(browser: Browser, token: str) -> None:
    browser.evaluate(
        f"document.getElementById('signin-token').value = {json.dumps(token)};"
        "document.getElementById('signin-form').requestSubmit(); true"
    )


def fetch_status(browser: Browser, path: str) -> int:
    return int(browser.evaluate(f"fetch({json.dumps(path)}).then((r) => r.status)"))


def test_sign_in_wrong_token_right_token_sign_out(browser: Browser, locked_url: str) -> None:
    shots = artifacts_dir()
    browser.navigate(locked_url)
    assert browser.wait_for("document.body.dataset.state === 'signin'")
    assert browser.evaluate("document.getElementById('signin').hidden") is False
    # Signed out, nothing but the form shows (no navigation, no sign-out button).
    assert browser.evaluate("getComputedStyle(document.getElementById('nav')).display") == "none"
    assert browser.evaluate("document.querySelectorAll('tr.instance').length") == 0
    assert fetch_status(browser, "/dashboard/instances") == 401
    browser.screenshot(shots / "console-signin.png")

    sign_in(browser, "not-the-token")
    message = browser.wait_for(
        "!document.getElementById('signin-error').hidden && "
        "document.getElementById('signin-error').textContent"
    )
    assert message == "Wrong token: check API_TOKEN and try again."
    assert fetch_status(browser, "/dashboard/instances") == 401

    sign_in(browser, TOKEN)
    browser.wait_for("document.body.dataset.state === 'ready'")
    names = browser.evaluate(
        "[...document.querySelectorAll('tr.instance')].map((r) => r.dataset.name)"
    )
    assert names == ["inst-a", "inst-b", "inst-c", "inst-d"]
    assert browser.evaluate("document.getElementById('overall-status').textContent") == "healthy"
    assert fetch_status(browser, "/dashboard/instances") == 200
    # The cookie is HttpOnly: the page's script cannot read it.
    assert browser.evaluate("document.cookie") == ""
    cookies = browser.send("Network.getCookies", session=True, urls=[locked_url])["cookies"]
    (cookie,) = [c for c in cookies if c["name"] == "zd_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    browser.screenshot(shots / "console-signed-in.png")

    # A reload keeps the session.
    browser.navigate(locked_url)
    browser.wait_for("document.body.dataset.state === 'ready'")

    browser.evaluate("document.getElementById('signout').click(); true")
    assert browser.wait_for("document.body.dataset.state === 'signin'")
    assert fetch_status(browser, "/dashboard/instances") == 401
    browser.navigate(locked_url)
    assert browser.wait_for("document.body.dataset.state === 'signin'")


def test_messages_view_filters_and_shows_a_timeline(
    browser: Browser, locked_url: str, seeded: Seeded
) -> None:
    res = seeded.res
    waited = seeded.message_ids[1]
    browser.navigate(locked_url)
    browser.wait_for("document.body.dataset.state === 'signin'")
    sign_in(browser, TOKEN)
    browser.wait_for("document.body.dataset.state === 'ready'")
    browser.evaluate("location.hash = '#messages'; true")
    browser.wait_for("document.querySelectorAll('tr.message').length === 2")
    # A failed message to filter for.
    failed = record(res, "doctor-x", 0)
    assert res.messages.mark_failed(failed, "recipient not on WhatsApp", NOW)
    browser.evaluate(
        "document.querySelector('#message-filters [name=state]').value = 'failed';"
        "document.getElementById('message-filters').requestSubmit(); true"
    )
    browser.wait_for(
        "document.querySelectorAll('tr.message').length === 1 && "
        f"document.querySelector('tr.message').dataset.id === '{failed}'"
    )
    assert browser.evaluate("document.querySelector('tr.message .last-error').textContent") == (
        "recipient not on WhatsApp"
    )
    browser.evaluate(
        "document.querySelector('#message-filters [name=state]').value = '';"
        "document.querySelector('#message-filters [name=contact_id]').value = 'doctor-2';"
        "document.getElementById('message-filters').requestSubmit(); true"
    )
    browser.wait_for(f"document.querySelector('tr.message')?.dataset.id === '{waited}'")
    browser.evaluate("document.querySelector('tr.message').click(); true")
    browser.wait_for(f"document.body.dataset.detail === '{waited}'")
    kinds = browser.evaluate(
        "[...document.querySelectorAll('#timeline li')].map((li) => li.dataset.kind)"
    )
    assert kinds == ["accepted", "sent"]
    assert (
        browser.evaluate("document.querySelector('#detail-fields [data-key=phone]').textContent")
        == "5511*******88"
    )
    browser.screenshot(artifacts_dir() / "console-messages.png")


def test_charts_are_drawn_from_seeded_data(
    browser: Browser, locked_url: str, seeded: Seeded
) -> None:
    res = seeded.res
    charts = ChartStore(res.sessions)
    campaign = [record(res, f"doctor-c{i}", i, campaign="promo") for i in range(3)]
    res.messages.claim(campaign[0], "inst-b", contact_id="doctor-c0", seen_preference=None, now=NOW)
    assert res.messages.mark_sent(campaign[0], "3EB0C", NOW)
    assert res.messages.note_requeue(
        campaign[1], NOW, reason="caps", not_before=NOW + timedelta(hours=1)
    )
    charts.sample_queue(NOW - timedelta(hours=2))
    charts.sample_queue(NOW - timedelta(hours=1))
    charts.sample_queue(NOW)
    browser.navigate(locked_url + "#charts")
    browser.wait_for("document.body.dataset.state === 'signin'")
    sign_in(browser, TOKEN)
    browser.wait_for("document.querySelectorAll('.instance-chart').length === 4")
    bars = browser.evaluate(
        "[...document.querySelectorAll('.instance-chart[data-name=\"inst-a\"] rect.hour-bar')]"
        ".map((r) => Number(r.dataset.sent))"
    )
    assert len(bars) == 24 and sum(bars) == 2 and bars[-2] == 1 and bars[-4] == 1
    assert browser.evaluate("document.querySelectorAll('rect.hour-bar').length") == 4 * 24
    assert browser.evaluate("document.querySelectorAll('line.cap-line').length") == 4
    points = browser.evaluate(
        "document.querySelector('polyline.depth-waiting').getAttribute('points')"
    )
    assert len(points.split()) == 3
    reasons = browser.evaluate(
        "[...document.querySelectorAll('rect.reason-bar')]"
        ".map((r) => [r.dataset.label, r.dataset.value])"
    )
    assert reasons == [["caps", "1"]]
    funnel = browser.evaluate(
        "[...document.querySelectorAll('.funnel[data-campaign=\"promo\"] rect.funnel-bar')]"
        ".map((r) => Number(r.dataset.value))"
    )
    assert funnel == [3, 1, 0, 0]
    browser.screenshot(artifacts_dir() / "console-charts.png")


def confirm(browser: Browser, button_selector: str, ok: bool, wait: bool = True) -> str:
    """Click a control, check the dialog opened, answer it; returns the dialog's text. When
    confirmed, waits for the call's outcome notice (one control at a time, as a person)."""
    browser.evaluate(
        "document.getElementById('notice').textContent = '';"
        f"document.querySelector({json.dumps(button_selector)}).click(); true"
    )
    text = browser.wait_for(
        "document.getElementById('confirm').open && "
        "document.getElementById('confirm-text').textContent"
    )
    which = "confirm-ok" if ok else "confirm-cancel"
    browser.evaluate(f"document.getElementById('{which}').click(); true")
    browser.wait_for("!document.getElementById('confirm').open")
    if ok and wait:
        browser.wait_for("/^(Done|Failed)/.test(document.getElementById('notice').textContent)")
    return str(text)


def test_ban_and_unban_from_the_page_with_confirmation(
    browser: Browser, locked_url: str, seeded: Seeded
) -> None:
    res = seeded.res
    browser.navigate(locked_url)
    browser.wait_for("document.body.dataset.state === 'signin'")
    sign_in(browser, TOKEN)
    browser.wait_for("document.querySelectorAll('tr.instance').length === 4")
    ban_b = "tr.instance[data-name='inst-b'] button[data-control='ban']"

    text = confirm(browser, ban_b, ok=False)
    assert text == "Really mark inst-b banned and move its contacts off it?"
    assert res.instances.get("inst-b").status.value == "connected"

    confirm(browser, ban_b, ok=True)
    browser.wait_for(
        "document.querySelector(\"tr.instance[data-name='inst-b']\").dataset.status === 'banned'"
    )
    assert res.instances.get("inst-b").status.value == "banned"
    assert "inst-b" not in [v.name for v in res.instances.routable()]  # routing sees it
    assert browser.evaluate("document.getElementById('notice').textContent") == (
        "Done: mark inst-b banned and move its contacts off it."
    )
    unban_b = "tr.instance[data-name='inst-b'] button[data-control='unban']"
    assert "unban inst-b" in confirm(browser, unban_b, ok=True)
    row_b = "document.querySelector(\"tr.instance[data-name='inst-b']\")"
    browser.wait_for(f"{row_b}.dataset.status === 'disconnected'")
    assert res.instances.get("inst-b").status.value == "disconnected"
    browser.screenshot(artifacts_dir() / "console-controls.png")


def test_pause_resume_and_cancel_call_the_control_routes(browser: Browser, locked_url: str) -> None:
    """The page's pause, resume and cancel requests, answered in the browser: their paths,
    bodies and the CSRF header the API asks of cookie-authenticated writes."""
    seen = browser.intercept(
        {
            "/controls/pauses": {
                "pauses": [
                    {"scope": "campaign", "target": "promo", "since": "2026-11-23T13:00:00+00:00"}
                ]
            },
            "/controls/pause": {},
            "/controls/resume": {},
            "/campaigns": {"campaigns": [{"name": "promo", "paused": True, "messages": 4}]},
            "/campaigns/promo/cancel": {"cancelled": 3},
        }
    )
    browser.navigate(locked_url)
    browser.wait_for("document.body.dataset.state === 'signin'")
    sign_in(browser, TOKEN)
    browser.wait_for("document.querySelectorAll('tr.campaign').length === 1")
    assert browser.evaluate("document.getElementById('pause-state').textContent").startswith(
        "paused: campaign promo since "
    )
    # Two controls back to back, the second opened before the first call has answered.
    confirm(browser, "#pool-controls [data-action='pause-all']", ok=True, wait=False)
    confirm(browser, "tr.instance[data-name='inst-a'] button[data-control='pause']", ok=True)
    confirm(browser, "tr.campaign button[data-control='resume']", ok=True)
    assert "cancel campaign promo" in confirm(
        browser, "tr.campaign button[data-control='cancel']", ok=True
    )
    browser.wait_for("document.getElementById('notice').textContent.startsWith('Done: cancel')")
    posts = [
        (r["url"].split("/", 3)[3], json.loads(r.get("postData") or "null"))
        for r in seen
        if r["method"] == "POST"
    ]
    assert posts == [
        ("controls/pause", {}),
        ("controls/pause", {"instance": "inst-a"}),
        ("controls/resume", {"campaign": "promo"}),
        ("campaigns/promo/cancel", None),
    ]
    for request in seen:
        if request["method"] == "POST":
            assert request["headers"]["X-Requested-With"] == "zapdispatch"


class _Held:
    """A scheduler that only records (nothing is re-run in this test)."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, float]] = []

    def schedule(self, message_id: object, countdown_seconds: float) -> None:
        self.calls.append((message_id, countdown_seconds))


def test_pause_from_the_page_holds_a_workers_sends_and_resume_releases_them(
    browser: Browser, locked_url: str, settings: Settings
) -> None:
    """The page's "Pause all" (confirmed, cookie-authenticated) reaches a worker process's
    own view of the pauses: its next message parks without an attempt; "Resume all" makes
    it due again."""
    worker = build_resources(settings)  # a worker process: its own pause board and stores
    try:
        dispatcher = Dispatcher(
            settings,
            worker.messages,
            worker.instances,
            worker.limiter,
            EvolutionClient("http://127.0.0.1:9", None),  # never called while paused
            _Held(),
            pauses=worker.pauses,
            policy=worker.policy,
            memory=worker.not_on_whatsapp,
        )
        browser.navigate(locked_url)
        browser.wait_for("document.body.dataset.state === 'signin'")
        sign_in(browser, TOKEN)
        browser.wait_for("document.body.dataset.state === 'ready'")
        confirm(browser, "#pool-controls [data-action='pause-all']", ok=True)
        assert browser.evaluate("document.getElementById('notice').textContent").startswith("Done")
        browser.wait_for("document.getElementById('pause-state').textContent.includes('all')")
        new = validate(
            {"phone": "+55 11 99999-8888", "text": "held by the page"},
            now=T0,
            default_ttl_seconds=3600,
        )
        accepted = worker.messages.accept(new)
        held = dispatcher.deliver(accepted.id)
        assert held.result is Result.PARKED and held.detail == "all sending paused"
        parked = worker.messages.get(accepted.id)
        assert parked.state == "waiting" and parked.attempts == 0

        confirm(browser, "#pool-controls [data-action='resume-all']", ok=True)
        browser.wait_for("document.getElementById('pause-state').textContent === 'sending: on'")
        woken = worker.messages.get(accepted.id)
        assert woken.not_before is not None and woken.not_before.timestamp() <= T0 + 1
    finally:
        worker.close()
