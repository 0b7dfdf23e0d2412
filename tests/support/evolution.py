"""Evolution API faked in process, as an `httpx.MockTransport` handler.

fake = FakeEvolution()
client = EvolutionClient("http://evolution.test", "key", transport=httpx.MockTransport(fake))
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

from worker.simulator.contract import sent_text_body

#: 2026-11-23 10:00:00 in São Paulo (13:00 UTC): a Monday morning (unix seconds).
T0 = 1_795_438_800.0

Handler = Callable[[httpx.Request], httpx.Response]


class FakeEvolution:
    """Answers sendText 201 as Evolution does and findMessages from what it sent; safe to
    call from many threads.

    Tests swap `behaviour` per instance (for sendText) and may turn `lookups` off (the
    route missing). A send is stamped with `clock()` when one is given (unix seconds),
    else with `now`, which the tests' stack moves with its clock.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.behaviour: dict[str, Handler] = {}
        self.lookups = True
        self.now = T0
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        instance = request.url.path.rsplit("/", 1)[-1]
        if request.url.path.startswith("/chat/findMessages/"):
            return self._find(instance, json.loads(request.content))
        if instance in self.behaviour:
            return self.behaviour[instance](request)
        return self.deliver(request)

    def time(self) -> float:
        """What a send is stamped with, unix seconds."""
        return self._clock() if self._clock is not None else self.now

    def deliver(self, request: httpx.Request) -> httpx.Response:
        """Send the message (record it) and answer 201 as Evolution does."""
        instance = request.url.path.rsplit("/", 1)[-1]
        body = json.loads(request.content)
        at = self.time()
        with self._lock:
            message_id = f"3EB0{next(self._ids):016X}"
            self.sent.append({"instance": instance, **body, "id": message_id, "at": at})
        return httpx.Response(
            201, json=sent_text_body(body["number"], body["text"], message_id, at)
        )

    def deliver_then(self, failure: Exception | httpx.Response) -> Handler:
        """A behaviour: the message goes out, then the answer is `failure` (raised, or
        answered when it is a response)."""

        def handler(request: httpx.Request) -> httpx.Response:
            self.deliver(request)
            if isinstance(failure, httpx.Response):
                return failure
            raise failure

        return handler

    def _find(self, instance: str, query: dict[str, Any]) -> httpx.Response:
        if not self.lookups:
            return httpx.Response(404, text=f"Cannot POST /chat/findMessages/{instance}")
        jid = query.get("where", {}).get("key", {}).get("remoteJid")
        with self._lock:
            sent = list(self.sent)
        records = [
            {
                "key": {
                    "id": r["id"],
                    "fromMe": True,
                    "remoteJid": f"{r['number']}@s.whatsapp.net",
                },
                "message": {"conversation": r["text"]},
                "messageTimestamp": int(r["at"]),
            }
            for r in reversed(sent)
            if r["instance"] == instance and jid in (None, f"{r['number']}@s.whatsapp.net")
        ]
        page = records[: int(query.get("offset", 50))]
        listing = {"total": len(records), "pages": 1, "currentPage": 1, "records": page}
        return httpx.Response(200, json={"messages": listing})

    def by_instance(self) -> dict[str, list[str]]:
        """Numbers sent to, per instance, in sending order."""
        out: dict[str, list[str]] = {}
        for record in self.sent:
            out.setdefault(record["instance"], []).append(record["number"])
        return out

    def sends(self) -> list[tuple[str, float]]:
        """(instance, time) of every send, in sending order."""
        return [(record["instance"], record["at"]) for record in self.sent]
