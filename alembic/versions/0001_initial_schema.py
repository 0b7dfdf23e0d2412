"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 18:10:52.924698
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('instance_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('instance', sa.String(length=64), nullable=False),
    sa.Column('old_status', sa.String(length=16), nullable=True),
    sa.Column('new_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instance_events'))
    )
    op.create_index('ix_instance_events_instance_created_at', 'instance_events', ['instance', 'created_at'], unique=False)
    op.create_table('instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('status', sa.Enum('connected', 'connecting', 'disconnected', 'banned', name='instance_status', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=200), nullable=True),
    sa.Column('hourly_cap', sa.Integer(), nullable=False),
    sa.Column('daily_cap', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('last_message_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('consecutive_failures', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('circuit_opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('consecutive_failures >= 0', name=op.f('ck_instances_failures_non_negative')),
    sa.CheckConstraint('daily_cap > 0', name=op.f('ck_instances_daily_cap_positive')),
    sa.CheckConstraint('hourly_cap > 0', name=op.f('ck_instances_hourly_cap_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_instances')),
    sa.UniqueConstraint('name', name=op.f('uq_instances_name'))
    )
    op.create_table('contacts',
    sa.Column('id', sa.String(length=128), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('preferred_instance', sa.String(length=64), nullable=True),
    sa.Column('preferred_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['preferred_instance'], ['instances.name'], name=op.f('fk_contacts_preferred_instance_instances'), onupdate='CASCADE', ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts'))
    )
    op.create_index(op.f('ix_contacts_preferred_instance'), 'contacts', ['preferred_instance'], unique=False)
    op.create_table('messages',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('contact_id', sa.String(length=128), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('state', sa.Enum('queued', 'waiting', 'sending', 'sent', 'failed', 'expired', name='message_state', native_enum=False, create_constraint=True, length=16), nullable=False),
    sa.Column('instance', sa.String(length=64), nullable=True),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('requeues', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.CheckConstraint('attempts >= 0', name=op.f('ck_messages_attempts_non_negative')),
    sa.CheckConstraint('requeues >= 0', name=op.f('ck_messages_requeues_non_negative')),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_messages_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_messages_idempotency_key'))
    )
    op.create_index(op.f('ix_messages_contact_id'), 'messages', ['contact_id'], unique=False)
    op.create_index('ix_messages_instance_sent_at', 'messages', ['instance', 'sent_at'], unique=False)
    op.create_index('ix_messages_pending_due', 'messages', ['state', 'not_before'], unique=False)
    op.create_index('ix_messages_state_updated_at', 'messages', ['state', 'updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_messages_state_updated_at', table_name='messages')
    op.drop_index('ix_messages_pending_due', table_name='messages')
    op.drop_index('ix_messages_instance_sent_at', table_name='messages')
    op.drop_index(op.f('ix_messages_contact_id'), table_name='messages')
    op.drop_table('messages')
    op.drop_index(op.f('ix_contacts_preferred_instance'), table_name='contacts')
    op.drop_table('contacts')
    op.drop_table('instances')
    op.drop_index('ix_instance_events_instance_created_at', table_name='instance_events')
    op.drop_table('instance_events')
