"""The migrations build exactly the schema the models describe, and walk down and up again."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from alembic import command
from models import metadata
from tests import services


@pytest.fixture
def empty_database_url() -> Iterator[str]:
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
