"""An SMTP sink on 127.0.0.1 (aiosmtpd) that keeps every message it receives.

with running_smtp_sink() as sink:
    settings.smtp_url = sink.url          # smtp://127.0.0.1:<port>
    ... sink.messages[0]["Subject"] ...
    sink.refuse = True                    # answer 451 (transient) to every RCPT
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.services import free_port


class SmtpSink:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse = False
        self._lock = threading.Lock()
        self.url = ""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]


@contextlib.contextmanager
def running_smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.url = f"smtp://127.0.0.1:{controller.port}"
    try:
        yield sink
    finally:
        controller.stop()
