"""Render the chaos figures as a Markdown table: `python -m tests.chaos.report [results.json]`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.chaos.results import COLUMNS, load

#: Scenario order in the table (rows of unknown faults last).
ORDER = ("worker", "redis", "postgres", "evolution", "bad input")


def _rank(row: dict[str, Any]) -> int:
    """Scenario order; within one scenario, the order the rows were recorded."""
    fault = str(row["fault"]).lower()
    return next((i for i, prefix in enumerate(ORDER) if fault.startswith(prefix)), len(ORDER))


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if c in ("fault", "notes") else "--:" for c in COLUMNS) + "|",
    ]
    for row in sorted(rows, key=_rank):
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    rows = load(Path(argv[0]) if argv else None)
    if not rows:
        print("no chaos results yet (run `pytest -m chaos`)", file=sys.stderr)
        return 1
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
