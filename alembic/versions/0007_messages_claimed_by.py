"""messages.claimed_by: the process that claimed a `sending` message

Each worker process keeps a heartbeat in Redis under its claimant name; when it stops,
the sweep releases the `sending` messages claimed under that name at once, instead of
after SENDING_STUCK_AFTER_SECONDS. No index: the sweep reads `sending` rows only, through
their partial index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('messages', sa.Column('claimed_by', sa.String(length=128), nullable=True))


def downgrade() -> None:
    op.drop_column('messages', 'claimed_by')
