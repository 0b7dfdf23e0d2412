"""The status API on real PostgreSQL and Redis: every route, 401, 404 and 503."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import SecretStr

from config import Settings
from models.enums import InstanceStatus
from tests.integration.api_support import NOW, Seeded, open_resources, seeded_app
from worker.api import create_app, deps_from_resources
from worker.api.auth import SESSION_MAX_AGE_SECONDS, session_value
from worker.resources import Resources, build_resources

TOKEN = "s3cret-token"


@pytest.fixture
def res(settings: Settings, redis_client: redis.Redis) -> Iterator[Resources]:
    resources = open_resources(settings, redis_client)
    yield resources
    resources.close()


@pytest.fixture
def seeded(res: Resources) -> Seeded:
    return seeded_app(res)


@pytest.fixture
def client(seeded: Seeded) -> TestClient:
    return TestClient(seeded.app)


def get_with_redis_down(settings: Settings, path: str) -> httpx.Response:
    """GET `path` from an API whose Redis is unreachable (nothing listens on port 1)."""
    broken = build_resources(settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    try:
        return TestClient(create_app(deps_from_resources(broken))).get(path)
    finally:
        broken.close()


def test_overview_has_the_seed_summary_and_rows(client: TestClient) -> None:
    body = client.get("/dashboard/instances").json()
    assert body["status"] == "healthy"
    assert body["summary"] == {
        "total_instances": 4,
        "online": 2,
        "offline": 1,
        "banned": 1,
        "capacity_day": 300,
        "sent_today": 3,
        "capacity_used_pct": 1.0,
    }
    assert body["open_alerts"] == 1
    rows = {row["name"]: row for row in body["instances"]}
    assert list(rows) == ["inst-a", "inst-b", "inst-c", "inst-d"]
    a = rows["inst-a"]
    assert a["status_emoji"] == "🟢" and rows["inst-c"]["status_emoji"] == "⛔"
    assert rows["inst-d"]["status_emoji"] == "🔴"
    assert (a["messages_hour"], a["capacity_hour"], a["messages_day"], a["capacity_day"]) == (
        3,
        10,
        3,
        100,
    )
    assert a["load_pct"] == 30.0 and a["available"] is True
    assert a["last_message_at"] is None  # stamped by the dispatcher, not by these seeds
    assert rows["inst-c"]["available"] is False
    assert body["timestamp"].startswith("2026-11-23T13:00:00")


def test_overview_is_critical_when_nothing_is_online(res: Resources) -> None:
    res.instances.add("lonely", "5511900000009", 10, 100, status=InstanceStatus.DISCONNECTED)
    body = TestClient(create_app(deps_from_resources(res))).get("/dashboard/instances").json()
    assert body["status"] == "critical"
    assert body["summary"]["offline"] == 1


def test_overview_is_degraded_when_fewer_than_half_are_online(res: Resources) -> None:
    res.instances.add("up", "5511900000001", 10, 100, status=InstanceStatus.CONNECTED)
    for name in ("down-1", "down-2"):
        res.instances.add(name, "5511900000002", 10, 100)
    body = TestClient(create_app(deps_from_resources(res))).get("/dashboard/instances").json()
    assert body["status"] == "degraded"


def test_detail_has_caps_usage_contacts_circuit_and_24_hours(client: TestClient) -> None:
    response = client.get("/dashboard/instances/inst-a")
    assert response.status_code == 200
    body = response.json()
    assert body["capacity"] == {"hour": 10, "day": 100}
    assert body["usage"] == {"messages_hour": 3, "messages_day": 3, "load_pct": 30.0}
    assert body["contacts_assigned"] == 2
    assert body["circuit"] == "closed" and body["consecutive_failures"] == 0
    history = body["sends_last_24h"]
    assert len(history) == 24
    assert history[-1]["hour"] == "2026-11-23T10:00:00-03:00"
    assert history[0]["hour"] == "2026-11-22T11:00:00-03:00"
    by_hour = {entry["hour"]: entry["sent"] for entry in history}
    assert by_hour["2026-11-23T09:00:00-03:00"] == 1  # sent 09:40 local
    assert by_hour["2026-11-23T07:00:00-03:00"] == 1  # sent 07:50 local
    assert sum(by_hour.values()) == 2


def test_detail_of_an_unknown_instance_is_a_404_with_a_clear_body(client: TestClient) -> None:
    response = client.get("/dashboard/instances/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "no instance named 'nope'"}
    assert client.get("/dashboard/instances/a%00b").status_code == 404


def test_health_is_healthy_with_latencies(client: TestClient) -> None:
    response = client.get("/dashboard/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["checks"] == {"instances": True, "circuits": True, "redis": True, "database": True}
    assert body["details"]["instances"] == "2/4 online"
    assert body["details"]["circuits"] == "4/4 closed"
    assert all(value >= 0 for value in body["latency_ms"].values())


def test_health_is_503_when_no_instance_is_online(res: Resources) -> None:
    res.instances.add("down", "5511900000001", 10, 100)
    response = TestClient(create_app(deps_from_resources(res))).get("/dashboard/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["instances"] is False and body["checks"]["database"] is True


def test_health_is_503_with_redis_unreachable(settings: Settings, seeded: Seeded) -> None:
    response = get_with_redis_down(settings, "/dashboard/health")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] is False and body["checks"]["database"] is True
    assert body["checks"]["instances"] is False  # the counters live in Redis
    assert "ConnectionError" in body["details"]["redis"]


def test_data_routes_answer_503_not_500_when_redis_is_down(
    settings: Settings, seeded: Seeded
) -> None:
    response = get_with_redis_down(settings, "/stats/instances")
    assert response.status_code == 503
    assert response.json() == {"detail": "redis unavailable"}


def test_stats_has_the_seed_keys(client: TestClient) -> None:
    body = client.get("/stats/instances").json()
    assert body["total_instances"] == 4 and body["online"] == 2
    assert body["capacity_day"] == 1000  # every instance's
    assert body["sent_today"] == 3
    assert body["instances"][0] == {
        "name": "inst-a",
        "status": "connected",
        "messages_hour": 3,
        "capacity_hour": 10,
        "messages_day": 3,
        "capacity_day": 100,
        "load_pct": 30.0,
        "available": True,
    }


def test_open_alerts(client: TestClient) -> None:
    alerts = client.get("/dashboard/alerts").json()["alerts"]
    assert [(a["kind"], a["subject"], a["severity"]) for a in alerts] == [
        ("instance_banned", "inst-c", "critical")
    ]
    assert alerts[0]["opened_at"] == NOW.isoformat()


def test_metrics_in_prometheus_format(client: TestClient) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'zapdispatch_instance_sent_hour{instance="inst-a"} 3.0',
        'zapdispatch_instance_sent_day{instance="inst-a"} 3.0',
        'zapdispatch_instance_hourly_cap{instance="inst-a"} 10.0',
        'zapdispatch_instance_daily_cap{instance="inst-b"} 200.0',
        'zapdispatch_instance_load_percent{instance="inst-a"} 30.0',
        'zapdispatch_instance_status{instance="inst-c",status="banned"} 1.0',
        'zapdispatch_instance_status{instance="inst-c",status="connected"} 0.0',
        'zapdispatch_instance_circuit_state{instance="inst-a",state="closed"} 1.0',
        'zapdispatch_messages{state="sent"} 2.0',
        'zapdispatch_messages{state="queued"} 0.0',
        "zapdispatch_message_requeues_total 0.0",
        'zapdispatch_alerts_open{kind="instance_banned",severity="critical"} 1.0',
        'zapdispatch_pool_status{status="healthy"} 1.0',
        "zapdispatch_dead_letters 0.0",
        "zapdispatch_scrape_ok 1.0",
    ):
        assert line in text, line


def test_metrics_report_a_failed_scrape_instead_of_failing(
    settings: Settings, seeded: Seeded
) -> None:
    response = get_with_redis_down(settings, "/metrics")
    assert response.status_code == 200
    assert "zapdispatch_scrape_ok 0.0" in response.text


def test_openapi_schema_and_docs_are_served(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {
        "/dashboard/instances",
        "/dashboard/instances/{name}",
        "/dashboard/health",
        "/stats/instances",
        "/metrics",
        "/livez",
    } <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_page_and_its_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").status_code == 200
    assert client.get("/static/secrets.txt").status_code == 404


# -- auth -------------------------------------------------------------------------------
GUARDED = [
    "/openapi.json",
    "/docs",
    "/metrics",
    "/dashboard/instances",
    "/dashboard/instances/inst-a",
    "/dashboard/health",
    "/dashboard/alerts",
    "/stats/instances",
]


@pytest.fixture
def guarded_client(settings: Settings, res: Resources) -> TestClient:
    seeded_app(res)
    locked = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    deps = deps_from_resources(res)
    return TestClient(create_app(type(deps)(**{**deps.__dict__, "settings": locked})))


@pytest.mark.parametrize("path", GUARDED)
def test_every_route_needs_the_token(guarded_client: TestClient, path: str) -> None:
    assert guarded_client.get(path).status_code == 401
    wrong = guarded_client.get(path, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert guarded_client.get(path, headers={"Authorization": TOKEN}).status_code == 401
    ok = guarded_client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_401_body_is_json(guarded_client: TestClient) -> None:
    response = guarded_client.get("/dashboard/instances")
    assert response.json() == {"detail": "missing or invalid bearer token or session"}


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/static/style.css", "/auth/session"])
def test_page_shell_is_open_and_holds_no_data(guarded_client: TestClient, path: str) -> None:
    response = guarded_client.get(path)
    assert response.status_code == 200
    assert "inst-a" not in response.text


def test_signin_sets_a_strict_httponly_cookie_that_authenticates(
    guarded_client: TestClient,
) -> None:
    assert guarded_client.get("/auth/session").json() == {
        "auth_required": True,
        "signed_in": False,
    }
    wrong = guarded_client.post("/auth/signin", json={"token": "nope"})
    assert wrong.status_code == 401 and wrong.json() == {"detail": "wrong token"}
    assert "set-cookie" not in wrong.headers
    ok = guarded_client.post("/auth/signin", json={"token": TOKEN})
    assert ok.status_code == 204
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("zd_session=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
    assert "Secure" not in cookie  # plain http here
    assert TOKEN not in cookie
    assert guarded_client.get("/auth/session").json()["signed_in"] is True
    assert guarded_client.get("/dashboard/instances").status_code == 200
    out = guarded_client.post("/auth/signout", headers={"X-Requested-With": "zapdispatch"})
    assert out.status_code == 204 and 'zd_session=""' in out.headers["set-cookie"]
    assert guarded_client.get("/dashboard/instances").status_code == 401


def test_wrong_tokens_are_throttled(guarded_client: TestClient) -> None:
    for _ in range(10):
        assert guarded_client.post("/auth/signin", json={"token": "guess"}).status_code == 401
    locked = guarded_client.post("/auth/signin", json={"token": TOKEN})
    assert locked.status_code == 429
    assert locked.json()["detail"].startswith("too many wrong tokens: try again in")
    assert int(locked.headers["retry-after"]) > 0
    assert (
        guarded_client.get(
            "/dashboard/instances", headers={"Authorization": f"Bearer {TOKEN}"}
        ).status_code
        == 200
    )  # the bearer header is not a sign-in


def test_cookie_is_secure_over_https(settings: Settings, res: Resources) -> None:
    seeded_app(res)
    locked = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    deps = deps_from_resources(res)
    app = create_app(type(deps)(**{**deps.__dict__, "settings": locked}))
    client = TestClient(app, base_url="https://console.example")
    ok = client.post("/auth/signin", json={"token": TOKEN})
    assert "Secure" in ok.headers["set-cookie"]


def test_forged_or_stale_cookies_are_refused(guarded_client: TestClient) -> None:
    now = int(time.time())
    for value in [
        "1.abc",
        "garbage",
        session_value("another-token", now),
        session_value(TOKEN, now - SESSION_MAX_AGE_SECONDS - 5),
    ]:
        guarded_client.cookies.set("zd_session", value)
        assert guarded_client.get("/dashboard/instances").status_code == 401, value
    guarded_client.cookies.set("zd_session", session_value(TOKEN, now))
    assert guarded_client.get("/dashboard/instances").status_code == 200


def test_cookie_writes_need_the_custom_header_or_same_origin(guarded_client: TestClient) -> None:
    """CSRF: a cross-site form can send the cookie (were it not Strict) but neither the
    custom header nor our Origin; the bearer header needs neither."""
    assert guarded_client.post("/auth/signin", json={"token": TOKEN}).status_code == 204
    path = "/instances/inst-b/ban"
    assert guarded_client.post(path).status_code == 401
    evil = guarded_client.post(path, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 401
    own = guarded_client.post(path, headers={"Origin": "http://testserver"})
    assert own.status_code == 200
    header = guarded_client.post(
        "/instances/inst-b/unban", headers={"X-Requested-With": "zapdispatch"}
    )
    assert header.status_code == 200
    guarded_client.cookies.clear()
    bearer = guarded_client.post(path, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bearer.status_code == 200


def test_livez_needs_no_token(guarded_client: TestClient) -> None:
    response = guarded_client.get("/livez")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
