"""Which process holds a claim: `host:pid:nonce`, one per process (a forked child gets its
own, even though it inherits its parent's memory).

A message in `sending` records the process that claimed it (`messages.claimed_by`); that
process keeps a heartbeat under the same name (worker/heartbeat.py), so a sweep can tell a
dead claimant's messages from a slow one's. The nonce tells apart two processes that got
the same pid (a restarted container).
"""

from __future__ import annotations

import os
import socket
import uuid

#: Longest claimant name (the `messages.claimed_by` column).
MAX_CLAIMANT_CHARS = 128

_mine: tuple[int, str] | None = None


def claimant() -> str:
    """This process's claimant name, made on first use after start or fork."""
    global _mine  # noqa: PLW0603 - one name per process, by design
    pid = os.getpid()
    if _mine is None or _mine[0] != pid:
        name = f"{socket.gethostname()[:80]}:{pid}:{uuid.uuid4().hex[:8]}"
        _mine = (pid, name[:MAX_CLAIMANT_CHARS])
    return _mine[1]
