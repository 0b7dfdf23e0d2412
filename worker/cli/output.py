"""What every command prints: one JSON document, or a table aligned for a terminal; and the
one error every command raises for bad input (exit status 2)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import click

from worker.phones import mask_phone


class BadInput(click.ClickException):
    """A clear one-line error with exit status 2 (unknown names, bad values)."""

    exit_code = 2


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide and fullwidth characters (emoji such as 🟢 and ⛔,
    CJK) take 2, combining marks and zero-width ones (variation selectors, joiners) 0."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or unicodedata.category(ch) in {"Mn", "Me", "Cf"}:
            continue
        width += 2 if unicodedata.east_asian_width(ch) in {"W", "F"} else 1
    return width


def pad(text: str, width: int) -> str:
    return text + " " * max(0, width - display_width(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns, two spaces apart, aligned by terminal width (emoji count 2)."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(pad(cell, w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def unmasked_phone_error(raw: str, exc: Exception) -> BadInput:
    """A phone error as the user should read it: with what they typed (it is their own
    terminal), not the masked form logs and the database get."""
    return BadInput(str(exc).replace(repr(mask_phone(raw)), repr(raw)))
