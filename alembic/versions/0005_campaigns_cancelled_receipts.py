"""campaigns, the `cancelled` state and delivery receipts

Messages carry an optional campaign label (pause, cancel and list by campaign), may end
`cancelled` (an operator cancelled them before they were sent), and record what WhatsApp
reported after the send: the receipt (`server_ack` → `delivered` → `read` → `played`, or
`error`) and when it was delivered and read. Receipts find their message by Evolution's
message id, hence the partial index on `provider_message_id`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 23:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = ('queued', 'waiting', 'sending', 'sent', 'failed', 'expired')
NEW_STATES = (*OLD_STATES, 'cancelled')
RECEIPTS = ('server_ack', 'delivered', 'read', 'played', 'error')


def _state_check(states: Sequence[str]) -> str:
    return 'state IN (' + ', '.join(f"'{s}'" for s in states) + ')'


def upgrade() -> None:
    op.drop_constraint(op.f('ck_messages_message_state'), 'messages', type_='check')
    op.create_check_constraint(
        op.f('ck_messages_message_state'), 'messages', _state_check(NEW_STATES)
    )
    op.add_column('messages', sa.Column('campaign', sa.String(length=100), nullable=True))
    op.add_column(
        'messages',
        sa.Column(
            'receipt',
            sa.Enum(*RECEIPTS, name='receipt', native_enum=False, create_constraint=True,
                    length=16),
            nullable=True,
        ),
    )
    op.add_column('messages', sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('messages', sa.Column('read_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        'ix_messages_campaign_state', 'messages', ['campaign', 'state'],
        postgresql_where=sa.text('campaign IS NOT NULL'),
    )
    op.create_index(
        'ix_messages_provider_message_id', 'messages', ['provider_message_id'],
        postgresql_where=sa.text('provider_message_id IS NOT NULL'),
    )


def downgrade() -> None:
    op.drop_index('ix_messages_provider_message_id', table_name='messages')
    op.drop_index('ix_messages_campaign_state', table_name='messages')
    op.drop_constraint(op.f('ck_messages_receipt'), 'messages', type_='check')
    op.drop_column('messages', 'read_at')
    op.drop_column('messages', 'delivered_at')
    op.drop_column('messages', 'receipt')
    op.drop_column('messages', 'campaign')
    op.execute("UPDATE messages SET state = 'failed' WHERE state = 'cancelled'")
    op.drop_constraint(op.f('ck_messages_message_state'), 'messages', type_='check')
    op.create_check_constraint(
        op.f('ck_messages_message_state'), 'messages', _state_check(OLD_STATES)
    )
