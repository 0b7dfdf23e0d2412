"""Engine and session factory. Built once per process (see worker/resources.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker


def make_engine(
    database_url: str, *, pool_size: int = 5, max_overflow: int | None = None, **options: Any
) -> Engine:
    """An engine with pre-ping, so a restarted PostgreSQL is reconnected transparently.
    `pool_size` connections are kept open, `max_overflow` (default: as many) more under load.
    """
    settings: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": pool_size if max_overflow is None else max_overflow,
        "pool_pre_ping": True,
        "pool_recycle": 1800,
        "connect_args": {"connect_timeout": 5},
    }
    return create_engine(database_url, **(settings | options))


#: A worker process's connections: the message store's hot statements keep up to 5 open
#: (10 under load); everything else (routing snapshot, sweep, monitor, API reads) keeps 2
#: (10 under load). So a process holds at most 7 idle and 20 busy PostgreSQL connections.
STATEMENT_POOL_SIZE = 5
SESSION_POOL_SIZE = 2
SESSION_MAX_OVERFLOW = 8


def make_statement_engine(database_url: str, *, pool_size: int = STATEMENT_POOL_SIZE) -> Engine:
    """An autocommit engine for `MessageStore`'s single statements, without pre-ping: the
    store replaces a dead connection itself, which saves a round trip per statement. Nothing
    is left open on a returned connection (autocommit; `Statements.in_transaction` always
    ends its transaction), so the pool does not reset it on return."""
    return make_engine(
        database_url,
        pool_size=pool_size,
        pool_pre_ping=False,
        pool_reset_on_return=None,
        isolation_level="AUTOCOMMIT",
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
