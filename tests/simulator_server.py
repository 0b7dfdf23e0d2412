"""Run the Evolution API simulator on a free loopback port, for tests.

    with running_simulator(["inst-a", "inst-b"], latency_ms=50, seed=1) as sim:
        client = EvolutionClient(sim.url, sim.api_key)
        sim.configure_instance("inst-b", state="close", disconnection_reason=401)
        ...
        assert sim.messages("inst-a")[0]["text"] == "hi"

uvicorn (httptools, uvloop, no access log) runs in a background thread of the test
process on 127.0.0.1, port 0 (the OS picks a free one: no race); the context manager
waits until the server answers and shuts it down on exit. Any process can reach `sim.url`
(e.g. a Celery worker subprocess). Helper methods use the `/_sim/` admin endpoints over
HTTP.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

from worker.simulator import SimulatorConfig, create_app

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class SimulatorHandle:
    """A running simulator: its `url`, `api_key`, and admin helpers."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url
        self.api_key = api_key
        self._admin = httpx.Client(base_url=url, timeout=10.0)

    def configure_instance(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create or update an instance: state, disconnection_reason, number, latency_ms,
        failure_rate, failure_mode, hang_connection_state."""
        return _as_dict(self._ok(self._admin.put(f"/_sim/instances/{name}", json=fields)))

    def remove_instance(self, name: str) -> None:
        self._ok(self._admin.delete(f"/_sim/instances/{name}"))

    def instances(self) -> list[dict[str, Any]]:
        return _as_list(self._ok(self._admin.get("/_sim/instances")))

    def configure(self, **fields: Any) -> dict[str, Any]:
        """Global settings: latency_ms, not_on_whatsapp, failure_rate, failure_mode,
        retry_after_seconds, hang_seconds, api_key."""
        return _as_dict(self._ok(self._admin.put("/_sim/config", json=fields)))

    def messages(self, instance: str | None = None) -> list[dict[str, Any]]:
        """Accepted messages: instance, number, text, provider_message_id, received_at."""
        params = {"instance": instance} if instance is not None else {}
        return _as_list(self._ok(self._admin.get("/_sim/messages", params=params)))

    def delays(self) -> dict[str, int]:
        """The `delay` (ms) of the last sendText to each number."""
        return dict(self._ok(self._admin.get("/_sim/delays")))

    def clear_messages(self) -> None:
        """Forget the received messages and the request counters."""
        self._ok(self._admin.delete("/_sim/messages"))

    def stats(self) -> dict[str, Any]:
        """{"total_requests": n, "instances": {name: {requests, accepted, failed, outcomes}}}"""
        return _as_dict(self._ok(self._admin.get("/_sim/stats")))

    def inbound(self, instance: str, number: str, text: str) -> str:
        """A contact (`number`, digits) writes `text` to `instance`: a messages.upsert webhook."""
        body = self._ok(
            self._admin.post(f"/_sim/inbound/{instance}", json={"number": number, "text": text})
        )
        return str(_as_dict(body)["id"])

    def webhook_attempts(self) -> list[dict[str, Any]]:
        """Every webhook POST the simulator made: event, instance, url, status, at."""
        return _as_list(self._ok(self._admin.get("/_sim/webhooks")))

    def close(self) -> None:
        self._admin.close()

    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        """The decoded JSON body (None for 204); raise on an error status."""
        response.raise_for_status()
        return response.json() if response.content else None


def _as_dict(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict)
    return body


def _as_list(body: Any) -> list[dict[str, Any]]:
    assert isinstance(body, list)
    return body


@contextlib.contextmanager
def running_simulator(instances: list[str], **options: Any) -> Iterator[SimulatorHandle]:
    """A simulator with `instances` (all open); `options` are SimulatorConfig fields."""
    config = SimulatorConfig(instances=list(instances), **options)
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            http="httptools",
            loop="uvloop",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, name="evolution-simulator", daemon=True)
    thread.start()
    try:
        handle = SimulatorHandle(_wait_for_url(server, thread), config.api_key)
        try:
            _wait_until_answering(handle)
            yield handle
        finally:
            handle.close()
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT_SECONDS)


def _wait_for_url(server: uvicorn.Server, thread: threading.Thread) -> str:
    """The URL of the port the OS picked (port 0), once uvicorn is listening."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the simulator did not start")
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


def _wait_until_answering(handle: SimulatorHandle) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            handle.instances()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
