"""The hot path's statements on the driver's own cursor, over SQLAlchemy's connection pool.

`MessageStore` runs three short statements per message (models/message_sql.py). Through a
SQLAlchemy `Connection` each cost 260 µs of client CPU on the bench machine; on psycopg's
cursor 95 µs, of which 20 are the pool's checkout and return (docs/benchmarks.md). So these
few statements, written once as SQL, go straight to psycopg; everything else in the project
stays on SQLAlchemy. The pool, its limits and its recycling are still SQLAlchemy's.

Errors keep SQLAlchemy's shape, so callers need not know the difference: a psycopg error
is raised as the matching `sqlalchemy.exc.DBAPIError` subclass, with
`connection_invalidated` set when the connection broke. A broken connection usually means
PostgreSQL restarted, so the whole pool is dropped then, as SQLAlchemy itself does on a
disconnect.

Parameters are psycopg's `%(name)s`; psycopg prepares a statement on a connection after its
fifth execution there (its default), so PostgreSQL plans each one once per connection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, LiteralString, TypeVar, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")


class Statements:
    """Runs single statements on an autocommit engine's pooled psycopg connections."""

    def __init__(self, engine: Engine) -> None:
        """`engine` should be in autocommit mode, without pre-ping (models/db.py
        make_statement_engine): one statement is one transaction and one round trip. On
        another engine's connections each statement is committed on its own (a round trip
        more): the API and the CLI share their sessions' pool this way."""
        self._engine = engine

    def first(self, sql: LiteralString, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row as a tuple, or None when it returns none."""
        return self._on_connection(sql, params, lambda conn: _first(conn, sql, params))

    def first_named(self, sql: LiteralString, params: Mapping[str, Any]) -> Any | None:
        """The first row as a named tuple (attribute access by column name), or None."""
        return self._on_connection(sql, params, lambda conn: _first_named(conn, sql, params))

    def row(
        self,
        sql: LiteralString,
        params: Mapping[str, Any],
        *,
        repeatable: bool = True,
        named: bool = False,
    ) -> Any | None:
        """The statement's first row (a tuple, or with `named` a named tuple), or None.

        When the pooled connection turns out dead (PostgreSQL restarted since it was last
        used), the whole pool is dropped and a `repeatable` statement is run once more on a
        fresh connection: what a ping on every checkout would buy, for one round trip per
        statement less. Repeatable means harmless if the first run did commit and only its
        answer was lost: ACCEPT finds its own row, MARK_SENT and ROUTING_INPUT change
        nothing the second time. The claims (CLAIM, ACCEPT_CLAIMING) are not: a lost answer
        would read as "claimed by another worker" and strand the message in `sending` until
        the sweep; they raise instead, and the task retries (the pool is fresh by then)."""
        run = self.first_named if named else self.first
        for attempt in (1, 2) if repeatable else (2,):
            try:
                return run(sql, params)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def one_row(
        self, sql: LiteralString, params: Mapping[str, Any], *, repeatable: bool = True
    ) -> tuple[Any, ...]:
        """The one row a statement always returns (the CTEs' summary row), as `row` runs it."""
        found = self.row(sql, params, repeatable=repeatable)
        if found is None:  # pragma: no cover - these statements select one row
            raise AssertionError("statement returned no row")
        return tuple(found)

    def in_transaction(
        self, sql: LiteralString, params: Mapping[str, Any], keep: Callable[[tuple[Any, ...]], bool]
    ) -> tuple[Any, ...]:
        """Run a one-row statement in a transaction; commit it only if `keep(row)`."""
        return self._on_connection(sql, params, lambda conn: _kept(conn, sql, params, keep))

    def _on_connection(
        self, sql: str, params: Mapping[str, Any], work: Callable[[psycopg.Connection[Any]], T]
    ) -> T:
        try:
            pooled = self._engine.raw_connection()
        except psycopg.Error as exc:  # no connection at all: the pool does not wrap this
            raise DBAPIError.instance(
                sql, dict(params), exc, psycopg.Error, connection_invalidated=True
            ) from exc
        conn = cast("psycopg.Connection[Any]", pooled.driver_connection)
        try:
            if conn.autocommit:
                return work(conn)
            with conn.transaction():  # a pool shared with sessions: commit explicitly
                return work(conn)
        except psycopg.Error as exc:
            broken = conn.broken or conn.closed
            if broken:  # PostgreSQL restarted, most likely: every pooled connection is dead
                pooled.invalidate(exc)
                self._engine.dispose()
            raise DBAPIError.instance(
                sql, dict(params), exc, psycopg.Error, connection_invalidated=broken
            ) from exc
        finally:
            pooled.close()


def _first(
    conn: psycopg.Connection[Any], sql: LiteralString, params: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    with conn.cursor() as cursor:
        return cursor.execute(sql, params).fetchone()


def _first_named(
    conn: psycopg.Connection[Any], sql: LiteralString, params: Mapping[str, Any]
) -> Any:
    with conn.cursor(row_factory=namedtuple_row) as cursor:
        return cursor.execute(sql, params).fetchone()


def _kept(
    conn: psycopg.Connection[Any],
    sql: LiteralString,
    params: Mapping[str, Any],
    keep: Callable[[tuple[Any, ...]], bool],
) -> tuple[Any, ...]:
    with conn.transaction():
        with conn.cursor() as cursor:
            row = cursor.execute(sql, params).fetchone()
        if row is None:  # pragma: no cover - callers pass statements that return a row
            raise AssertionError("the statement returned no row")
        if not keep(row):
            raise psycopg.Rollback()  # rolled back, and swallowed by `transaction()`
    return tuple(row)
