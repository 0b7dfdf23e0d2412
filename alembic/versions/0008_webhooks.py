"""webhooks: newer status observations win, contacts' replies and opt-outs

Instances record when the observation behind their status was made (a poll's start or a
webhook's arrival), so an older observation arriving later does not overwrite a newer one.
Contacts record their last reply and their opt-out, and are found by phone (inbound
messages and opt-outs name a phone, not a contact id). Opted-out phones are kept in their
own table, so an opt-out by phone holds even when a contact's phone changes.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'instances', sa.Column('status_observed_at', sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column('contacts', sa.Column('last_reply_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('contacts', sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_contacts_phone', 'contacts', ['phone'])
    op.create_table(
        'opt_outs',
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('phone', name=op.f('pk_opt_outs')),
    )


def downgrade() -> None:
    op.drop_table('opt_outs')
    op.drop_index('ix_contacts_phone', table_name='contacts')
    op.drop_column('contacts', 'opted_out_at')
    op.drop_column('contacts', 'last_reply_at')
    op.drop_column('instances', 'status_observed_at')
