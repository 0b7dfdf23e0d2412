"""send attempts: what is proven about each send

Each claim of a message for a send records an attempt row; its outcome says what is proven
(`sent`, `not_sent`, `unknown` until Evolution has been asked, ...). The limiter rebuilds
its hourly and daily counters from these rows when Redis lost them, so the last day of
`sent` messages is copied in as attempts: counters rebuilt right after the upgrade count
the sends made before it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ('sending', 'sent', 'not_sent', 'unknown', 'absent', 'unverified')


def upgrade() -> None:
    op.create_table(
        'send_attempts',
        sa.Column('id', sa.BigInteger(), nullable=False),
        sa.Column('message_id', postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column('instance', sa.String(length=64), nullable=False),
        sa.Column(
            'outcome',
            sa.Enum(*OUTCOMES, name='attempt_outcome', native_enum=False,
                    create_constraint=True, length=16),
            nullable=False,
        ),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('provider_message_id', sa.String(length=128), nullable=True),
        sa.Column('lookups', sa.Integer(), server_default=sa.text('0'), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ['message_id'], ['messages.id'],
            name=op.f('fk_send_attempts_message_id_messages'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_send_attempts')),
    )
    op.create_index('ix_send_attempts_message_id', 'send_attempts', ['message_id'])
    op.create_index('ix_send_attempts_started_at', 'send_attempts', ['started_at'])
    op.execute(
        """
        INSERT INTO send_attempts (message_id, instance, outcome, started_at, ended_at,
                                   provider_message_id, lookups)
        SELECT id, instance, 'sent', sent_at, sent_at, provider_message_id, 0
          FROM messages
         WHERE state = 'sent' AND instance IS NOT NULL
           AND sent_at > now() - INTERVAL '2 days'
        """
    )
    op.execute(
        """
        INSERT INTO send_attempts (message_id, instance, outcome, started_at, lookups)
        SELECT id, instance, 'sending', claimed_at, 0
          FROM messages
         WHERE state = 'sending' AND instance IS NOT NULL AND claimed_at IS NOT NULL
        """
    )


def downgrade() -> None:
    op.drop_index('ix_send_attempts_started_at', table_name='send_attempts')
    op.drop_index('ix_send_attempts_message_id', table_name='send_attempts')
    op.drop_table('send_attempts')
