"""Start a batch of test threads at once and wait for all of them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any


def run_on_threads(
    target: Callable[..., object],
    args: Iterable[tuple[Any, ...]],
    *,
    timeout_seconds: float | None = None,
) -> None:
    """One thread per argument tuple, all started before any is joined; each join waits at
    most `timeout_seconds` (None: until the thread ends)."""
    threads = [threading.Thread(target=target, args=a) for a in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_seconds)
