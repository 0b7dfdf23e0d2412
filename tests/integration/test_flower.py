"""`celery -A worker flower` with FLOWER_BASIC_AUTH: 401 without credentials, the worker
listed with them, and task arguments shown with the phone masked and the text shortened."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery.signals import before_task_publish

from tests.support.processes import (
    ServiceProcess,
    producer,
    service_env,
    start_worker,
    wait_until,
)
from tests.support.services import free_port
from worker.celery_masking import MAX_REPR_CHARS, _mask_published_headers

pytestmark = pytest.mark.e2e

AUTH = ("ops", "s3cret")
SEND = "zapdispatch.send_message"
RAW_PHONE = "+55 11 99999-8888"
LONG_TEXT = "Olá doutor, sua consulta de amanhã às 14h está confirmada. Responda SIM."


def get(url: str, **kwargs: Any) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=5, **kwargs)
    except httpx.HTTPError:
        return None


@pytest.fixture
def flower_env(database_url: str, redis_url: str, redis_client: object) -> dict[str, str]:
    return service_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        FLOWER_BASIC_AUTH=f"{AUTH[0]}:{AUTH[1]}",
        EVOLUTION_API_URL="http://127.0.0.1:9",
    )


@pytest.fixture
def flower_url(
    start_celery: Callable[..., ServiceProcess],
    flower_env: dict[str, str],
) -> Iterator[str]:
    port = free_port()
    start_celery(["flower", f"--port={port}", "--address=127.0.0.1"], flower_env, "flower")
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: get(url + "/healthcheck") is not None, 60, "Flower to listen")
    yield url


@pytest.fixture
def unmasked_producers() -> Iterator[None]:
    """Publish as a producer without this code base would: no header masking."""
    before_task_publish.disconnect(_mask_published_headers)
    yield
    before_task_publish.connect(_mask_published_headers)


def test_flower_needs_basic_auth_and_lists_the_worker(
    flower_url: str,
    flower_env: dict[str, str],
    start_celery: Callable[..., ServiceProcess],
) -> None:
    for path in ("/", "/api/workers", "/workers"):
        response = get(flower_url + path)
        assert response is not None and response.status_code == 401, path
    assert get(flower_url + "/api/workers", auth=("ops", "wrong")).status_code == 401  # type: ignore[union-attr]
    start_worker(start_celery, flower_env, concurrency=1, pool="solo", name="flowertest")

    def listed() -> bool:
        response = get(flower_url + "/api/workers?refresh=1", auth=AUTH)
        return (
            response is not None
            and response.status_code == 200
            and any(name.startswith("flowertest-") for name in response.json())
        )

    wait_until(listed, 60, "the worker in Flower's /api/workers")


def test_flower_shows_masked_arguments_with_readable_task_names(
    flower_url: str,
    flower_env: dict[str, str],
    redis_url: str,
    start_celery: Callable[..., ServiceProcess],
    unmasked_producers: None,
    tmp_path: Path,
) -> None:
    start_worker(start_celery, flower_env, concurrency=1, pool="solo", name="masktest")
    task_id = (
        producer(redis_url)
        .send_task(
            "zapdispatch.send_message",
            kwargs={"phone": RAW_PHONE, "text": LONG_TEXT, "contact_id": "doctor-1"},
        )
        .id
    )
    found: dict[str, Any] = {}

    def seen() -> bool:
        response = get(f"{flower_url}/api/task/info/{task_id}", auth=AUTH)
        if response is None or response.status_code != 200 or not response.json().get("kwargs"):
            return False
        found.update(response.json())
        return True

    wait_until(seen, 60, "the task in Flower")
    assert found["name"] == "zapdispatch.send_message"
    shown = found["kwargs"]
    assert "5511*******88" in shown
    assert "99999" not in shown and "8888'" not in shown
    assert "Olá doutor, sua cons…" in shown and "Responda SIM" not in shown


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses a socket LISTENs on for `port`, from /proc/net/tcp (Linux)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, port_hex = local.split(":")
        if state == "0A" and int(port_hex, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_flower_without_basic_auth_listens_on_loopback_only(
    database_url: str,
    redis_url: str,
    start_celery: Callable[..., ServiceProcess],
) -> None:
    env = service_env(
        DATABASE_URL=database_url, REDIS_URL=redis_url, EVOLUTION_API_URL="http://127.0.0.1:9"
    )
    port = free_port()
    start_celery(["flower", f"--port={port}"], env, "flower-open")  # no --address: all, by default
    wait_until(lambda: get(f"http://127.0.0.1:{port}/healthcheck") is not None, 60, "Flower")
    assert listening_addresses(port) == {"127.0.0.1"}
    refused = start_celery(["flower", f"--port={free_port()}", "--address=0.0.0.0"], env, "f2")
    assert refused.proc.wait(timeout=60) == 2
    output = refused.output().strip()
    assert output.startswith("invalid configuration: FLOWER_BASIC_AUTH: required"), output
    assert len(output.splitlines()) == 1, output


def test_flower_metrics_need_basic_auth_when_it_is_on(flower_url: str) -> None:
    response = get(flower_url + "/metrics")
    assert response is not None and response.status_code == 401
    authorized = get(flower_url + "/metrics", auth=AUTH)
    assert authorized is not None and authorized.status_code == 200
    assert "flower_events_total" in authorized.text or "# HELP" in authorized.text


def test_flower_masks_phones_of_any_type_and_bounds_reprs(
    flower_url: str,
    flower_env: dict[str, str],
    redis_url: str,
    start_celery: Callable[..., ServiceProcess],
    unmasked_producers: None,
) -> None:
    start_worker(start_celery, flower_env, concurrency=1, pool="solo", name="masktypes")
    app = producer(redis_url)
    sent = {
        "int": app.send_task(SEND, kwargs={"phone": 5511999998888, "text": "oi"}).id,
        "list": app.send_task(SEND, kwargs={"phone": ["5511999998888", RAW_PHONE]}).id,
        "dict": app.send_task(SEND, kwargs={"phone": {"home": RAW_PHONE}, "text": "oi"}).id,
        "positional": app.send_task(SEND, args=[5511999998888, "oi"]).id,
        "inside text": app.send_task(SEND, kwargs={"contact_id": f"call {RAW_PHONE}"}).id,
        "100 KB": app.send_task(SEND, kwargs={"phone": "1", "text": "y" * 100_000}).id,
    }
    shown: dict[str, str] = {}

    def all_seen() -> bool:
        for label, task_id in sent.items():
            if label in shown:
                continue
            response = get(f"{flower_url}/api/task/info/{task_id}", auth=AUTH)
            if response is not None and response.status_code == 200:
                info = response.json()
                if info.get("kwargs") is not None and info.get("args") is not None:
                    shown[label] = f"{info['args']} {info['kwargs']}"
        return len(shown) == len(sent)

    wait_until(all_seen, 60, "every task in Flower")
    for label, text in shown.items():
        assert "999998888" not in text and "99999-8888" not in text, (label, text)
        assert len(text) <= 2 * MAX_REPR_CHARS + 1, (label, len(text))
    assert "5511*******88" in shown["int"] and "5511*******88" in shown["positional"]
