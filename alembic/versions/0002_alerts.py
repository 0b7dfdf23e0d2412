"""alerts: one row per alert occurrence, and the notification outbox

At most one open alert per (kind, subject): a partial unique index (resolved_at IS NULL).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 18:16:53.364585
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_notified_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminders', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_opened_at', 'alerts', ['opened_at'], unique=False)
    op.create_index('uq_alerts_open_kind_subject', 'alerts', ['kind', 'subject'], unique=True, postgresql_where=sa.text('resolved_at IS NULL'))
    op.create_table('alert_notifications',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('alert_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('event', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_notifications_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_notifications'))
    )
    op.create_index(op.f('ix_alert_notifications_alert_id'), 'alert_notifications', ['alert_id'], unique=False)
    op.create_index('ix_alert_notifications_pending', 'alert_notifications', ['created_at'], unique=False, postgresql_where=sa.text('sent_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_alert_notifications_pending', table_name='alert_notifications', postgresql_where=sa.text('sent_at IS NULL'))
    op.drop_index(op.f('ix_alert_notifications_alert_id'), table_name='alert_notifications')
    op.drop_table('alert_notifications')
    op.drop_index('uq_alerts_open_kind_subject', table_name='alerts', postgresql_where=sa.text('resolved_at IS NULL'))
    op.drop_index('ix_alerts_opened_at', table_name='alerts')
    op.drop_table('alerts')
