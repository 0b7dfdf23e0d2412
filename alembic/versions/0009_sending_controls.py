"""sending controls: pauses, warm-up start, wait reasons, not-on-WhatsApp memory

- `pauses`: one row per pause in force (all sending, an instance, a campaign); resuming
  deletes it. Workers read it through a Redis mirror (worker/pauses.py).
- `instances.warmup_started_at`: day 1 of the warm-up ramp (NULL: since `created_at`);
  `zapdispatch instances set NAME --restart-warmup` sets it.
- `messages.wait_reason`: why a `waiting` message waits when not for capacity (`paused`,
  `quiet_hours`), so resuming wakes exactly the paused ones.
- `not_on_whatsapp`: phones Evolution reported not on WhatsApp, with when.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'pauses',
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('target', sa.String(length=100), nullable=False),
        sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "scope IN ('all', 'instance', 'campaign')", name=op.f('ck_pauses_pause_scope')
        ),
        sa.CheckConstraint("(scope = 'all') = (target = '')", name=op.f('ck_pauses_pause_target')),
        sa.PrimaryKeyConstraint('scope', 'target', name=op.f('pk_pauses')),
    )
    op.create_table(
        'not_on_whatsapp',
        sa.Column('phone', sa.String(length=32), nullable=False),
        sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('phone', name=op.f('pk_not_on_whatsapp')),
    )
    op.add_column(
        'instances', sa.Column('warmup_started_at', sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column('messages', sa.Column('wait_reason', sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column('messages', 'wait_reason')
    op.drop_column('instances', 'warmup_started_at')
    op.drop_table('not_on_whatsapp')
    op.drop_table('pauses')
