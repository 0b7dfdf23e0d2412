"""The chaos suite's figures: one row per fault, in the shape of Jepsen's queue checker.

Each test calls `record(Row(...))`; rows go to a JSON file (env ZD_CHAOS_RESULTS, default
tests/artifacts/chaos-results.json), replacing an earlier row for the same fault, under a
file lock so parallel test workers do not lose each other's rows.
`python -m tests.chaos.report` renders the file as a Markdown table.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import ROOT

DEFAULT_PATH = ROOT / "tests" / "artifacts" / "chaos-results.json"
COLUMNS = ("fault", "accepted", "sent", "lost", "duplicated", "expired", "failed", "notes")


def results_path() -> Path:
    return Path(os.environ.get("ZD_CHAOS_RESULTS") or DEFAULT_PATH)


@dataclass
class Row:
    """Counts over the messages the producer handed over in one fault scenario.

    accepted: recorded in PostgreSQL (or, for input the broker refused, handed over);
    sent / expired / failed: final states; lost: accepted but neither terminal nor, when
    `sent`, seen by the Evolution simulator; duplicated: extra copies the simulator received
    (grouped by number and text).
    """

    fault: str
    accepted: int
    sent: int
    lost: int
    duplicated: int
    expired: int
    failed: int
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def record(row: Row) -> None:
    path = results_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        text = handle.read()
        rows = [r for r in (json.loads(text) if text.strip() else []) if r["fault"] != row.fault]
        rows.append(asdict(row))
        handle.seek(0)
        handle.truncate()
        json.dump(rows, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def load(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or results_path()
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    return list(json.loads(text)) if text.strip() else []
