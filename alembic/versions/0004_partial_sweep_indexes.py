"""sweep indexes limited to the state each sweep query reads

The two (state, ...) indexes covered every message ever recorded; the sweep only reads
`waiting`, `queued` and `sending` rows. Each replacement holds one state's live rows, so it
stays the size of the backlog, and a message recorded `sent` no longer writes an entry in
them. Built and dropped CONCURRENTLY (outside a transaction): writers are not blocked while
a large `messages` table is scanned. A concurrent build that is interrupted leaves an
invalid index behind, so each index is dropped (if there) before it is built: running the
migration again finishes the job.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (name, column, state)
PARTIAL = (
    ('ix_messages_waiting_not_before', 'not_before', 'waiting'),
    ('ix_messages_queued_updated_at', 'updated_at', 'queued'),
    ('ix_messages_sending_claimed_at', 'claimed_at', 'sending'),
)
#: (name, columns) as revision 0001 made them
FULL = (
    ('ix_messages_pending_due', ['state', 'not_before']),
    ('ix_messages_state_updated_at', ['state', 'updated_at']),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, column, state in PARTIAL:
            _drop(name)
            op.create_index(
                name,
                'messages',
                [column],
                postgresql_where=sa.text(f"state = '{state}'"),
                postgresql_concurrently=True,
            )
        for name, _ in FULL:
            _drop(name)


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, columns in FULL:
            _drop(name)
            op.create_index(name, 'messages', columns, postgresql_concurrently=True)
        for name, _, _ in PARTIAL:
            _drop(name)


def _drop(name: str) -> None:
    op.drop_index(name, table_name='messages', postgresql_concurrently=True, if_exists=True)
