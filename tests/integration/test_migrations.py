"""The migrations build exactly the schema the models describe, and walk down and up again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from alembic import command
from models import metadata
from tests.support import services


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    yield from _empty_database()


@pytest.fixture
def other_empty_database_url() -> Iterator[str]:
    yield from _empty_database()


def _empty_database() -> Iterator[str]:
    services.require(services.postgres_is_up(), "PostgreSQL")
    name = f"zd_test_mig_{uuid.uuid4().hex[:10]}"
    services.admin_execute(f'CREATE DATABASE "{name}"')
    yield services.pg_url(name)
    services.drop_database(name)


def alembic_config(url: str) -> Config:
    config = Config(str(services.ROOT / "alembic.ini"))
    config.attributes["database_url"] = url
    return config


def schema_drift(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_upgrade_matches_models_then_down_and_up_again(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "head")
    assert schema_drift(empty_database_url) == []

    command.downgrade(config, "base")
    engine = create_engine(empty_database_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()

    command.upgrade(config, "head")
    assert schema_drift(empty_database_url) == []


def index_definitions(url: str) -> dict[str, str]:
    """Every index on the models' tables as PostgreSQL prints it back (`pg_indexes`):
    columns, uniqueness and a partial index's predicate, normalized by the server."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = 'public' AND tablename = ANY(:tables)"
                ),
                {"tables": list(metadata.tables)},
            )
            return {str(name): str(definition) for name, definition in rows}
    finally:
        engine.dispose()


def test_migrated_indexes_are_the_models_own_including_partial_predicates(
    empty_database_url: str, other_empty_database_url: str
) -> None:
    """alembic's comparison ignores an index's WHERE clause; the server's own text does not."""
    command.upgrade(alembic_config(empty_database_url), "head")
    engine = create_engine(other_empty_database_url)
    metadata.create_all(engine)
    engine.dispose()
    migrated = index_definitions(empty_database_url)
    assert migrated == index_definitions(other_empty_database_url)
    assert "WHERE ((state)::text = 'waiting'::text)" in migrated["ix_messages_waiting_not_before"]


def test_0004_rebuilds_a_sweep_index_an_interrupted_run_left_behind(
    empty_database_url: str, other_empty_database_url: str
) -> None:
    """An interrupted CREATE INDEX CONCURRENTLY leaves an (invalid) index of that name."""
    config = alembic_config(empty_database_url)
    command.upgrade(config, "0003")
    engine = create_engine(empty_database_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_messages_waiting_not_before ON messages (created_at)"))
        conn.execute(
            text(
                "UPDATE pg_index SET indisvalid = false "
                "WHERE indexrelid = 'ix_messages_waiting_not_before'::regclass"
            )
        )
    engine.dispose()
    command.upgrade(config, "head")
    models_engine = create_engine(other_empty_database_url)
    metadata.create_all(models_engine)
    models_engine.dispose()
    assert index_definitions(empty_database_url) == index_definitions(other_empty_database_url)
