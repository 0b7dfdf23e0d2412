"""The sweep's queries on real PostgreSQL: each one reads its state's partial index.

psycopg prepares a statement from its fifth run on a connection, and PostgreSQL may then
plan it once for any parameters (a generic plan). A partial index `WHERE state = 'waiting'`
is only usable in such a plan when the query's own text says `state = 'waiting'`; a bound
state parameter would leave the sweep scanning every message ever recorded.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Engine, event

from models.db import make_session_factory
from models.sweep_store import SweepStore

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def captured_selects(engine: Engine, run: Any) -> list[tuple[str, dict[str, Any]]]:
    """The SELECT statements (SQL text, parameters) `run()` sent through `engine`."""
    seen: list[tuple[str, dict[str, Any]]] = []

    def record(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, dict(params or {})))

    event.listen(engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen


def generic_plan(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> str:
    """EXPLAIN of `sql` prepared with $n parameters and planned generically."""
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    conn.execute("DEALLOCATE ALL")
    conn.execute("PREPARE sweep_query AS " + PLACEHOLDER.sub(numbered, sql))
    with psycopg.ClientCursor(conn) as cursor:
        marks = ", ".join(["%s"] * len(names))
        cursor.execute(f"EXPLAIN EXECUTE sweep_query({marks})", [params[n] for n in names])
        return "\n".join(str(row[0]) for row in cursor.fetchall())


def test_each_sweep_query_uses_its_partial_index_in_a_generic_plan(
    engine: Engine, database_url: str
) -> None:
    store = SweepStore(make_session_factory(engine))
    now = datetime.now(UTC)

    def sweep() -> None:
        store.wake_due(now, 10)
        store.idle_queued(now, 10)
        store.release_stuck_sending(now, now, 10)

    selects = captured_selects(engine, sweep)
    assert len(selects) == 3, selects
    url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute("SET enable_seqscan = off")  # an empty table: only indexes compete
        plans = [generic_plan(conn, sql, params) for sql, params in selects]
    expected = [
        "ix_messages_waiting_not_before",
        "ix_messages_queued_updated_at",
        "ix_messages_sending_claimed_at",
    ]
    for plan, index in zip(plans, expected, strict=True):
        assert f"using {index}" in plan, plan
