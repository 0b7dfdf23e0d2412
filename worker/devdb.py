"""`python -m worker.devdb`: create the database named by DATABASE_URL if it is missing."""

from __future__ import annotations

import sys

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import load_settings


def ensure_database(database_url: str) -> bool:
    """Create the database if missing; True when it was created."""
    url = make_url(database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            return not exists
    finally:
        admin.dispose()


def main() -> None:
    url = load_settings().database_url
    created = ensure_database(url)
    name = make_url(url).database
    print(f"database {name} {'created' if created else 'already exists'}", file=sys.stderr)


if __name__ == "__main__":
    main()
