"""message timeline events and queue-depth samples

`message_events`: append-only history of each message's waits (reason, until when),
failed attempts sent back to the queue, failures and expiry (the console's timeline).
`queue_samples`: messages per non-terminal state, counted on each beat health check (the
console's queue-depth chart).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'message_events',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('message_id', postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('instance', sa.String(length=64), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('until', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ['message_id'], ['messages.id'],
            name=op.f('fk_message_events_message_id_messages'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_message_events')),
    )
    op.create_index(
        'ix_message_events_message_id_at', 'message_events', ['message_id', 'at'], unique=False
    )
    op.create_table(
        'queue_samples',
        sa.Column('sampled_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('sampled_at', 'state', name=op.f('pk_queue_samples')),
    )


def downgrade() -> None:
    op.drop_table('queue_samples')
    op.drop_index('ix_message_events_message_id_at', table_name='message_events')
    op.drop_table('message_events')
