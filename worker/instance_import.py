"""`zapdispatch instances import FILE`: register the pool from a YAML file, idempotently.

The file (a list under `instances:`, or a bare list):

    instances:
      - name: inst-a
        phone: "+55 11 90000-0001"
        hourly: 30
        daily: 200
        active: true        # optional, default true

A name not registered yet is added (status `disconnected` until the health check sees it);
a registered one gets the file's caps and `active` flag when they differ, and is otherwise
left alone, so running the import on every start (docker compose does) changes nothing the
second time. A registered number's phone is never changed by an import: a different phone
is reported as an error for that entry, the rest still applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.instance_store import InstanceStore, UnknownInstance
from worker.phones import InvalidPhone, normalize_phone


class ImportFileError(ValueError):
    """The file is missing, not YAML, or not a list of instances."""


class InstanceEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00\s]+$")
    phone: str = Field(min_length=1, max_length=64)
    hourly: int = Field(gt=0)
    daily: int = Field(gt=0)
    active: bool = True


@dataclass(frozen=True, slots=True)
class ImportLine:
    name: str
    outcome: str  # added, updated, unchanged, error
    detail: str = ""


def read_entries(path: Path) -> list[InstanceEntry]:
    """Parse and validate the whole file before anything is written."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ImportFileError(f"{path} is not valid YAML: {exc}") from None
    items = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ImportFileError(f"{path}: expected a list of instances under `instances:`")
    entries: list[InstanceEntry] = []
    for number, item in enumerate(items, start=1):
        try:
            entries.append(InstanceEntry.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors()
            )
            raise ImportFileError(f"{path}: instance #{number}: {problems}") from None
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ImportFileError(f"{path}: a name appears twice")
    return entries


def import_instances(store: InstanceStore, entries: list[InstanceEntry]) -> list[ImportLine]:
    return [_apply(store, entry) for entry in entries]


def _apply(store: InstanceStore, entry: InstanceEntry) -> ImportLine:
    try:
        phone = normalize_phone(entry.phone)
    except InvalidPhone:
        return ImportLine(entry.name, "error", f"phone {entry.phone!r} is not a valid number")
    try:
        current = store.get(entry.name)
    except UnknownInstance:
        store.add(entry.name, phone, entry.hourly, entry.daily)
        if not entry.active:
            store.update(entry.name, active=False)
        return ImportLine(entry.name, "added", f"{entry.hourly}/hour, {entry.daily}/day")
    if current.phone != phone:
        return ImportLine(
            entry.name,
            "error",
            f"registered with another phone ({current.phone}); not changed by an import",
        )
    changes = [
        f"{label} {old} → {new}"
        for label, old, new in (
            ("hourly", current.hourly_cap, entry.hourly),
            ("daily", current.daily_cap, entry.daily),
            ("active", current.active, entry.active),
        )
        if old != new
    ]
    if not changes:
        return ImportLine(entry.name, "unchanged")
    store.update(entry.name, hourly_cap=entry.hourly, daily_cap=entry.daily, active=entry.active)
    return ImportLine(entry.name, "updated", ", ".join(changes))
