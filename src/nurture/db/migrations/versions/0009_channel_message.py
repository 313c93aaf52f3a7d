"""shared outbox of plugin channels (channel_message)

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import nurture.db.base

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('trace_id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('activity_id', sa.Integer(), nullable=False),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('recipient', sa.String(length=320), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', nurture.db.base.UTCDateTime(), nullable=True),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('lease_until', nurture.db.base.UTCDateTime(), nullable=True),
    sa.Column('provider_id', sa.String(length=128), nullable=True),
    sa.Column('failure_reason', sa.Text(), nullable=True),
    sa.Column('created_at', nurture.db.base.UTCDateTime(), nullable=False),
    sa.Column('sent_at', nurture.db.base.UTCDateTime(), nullable=True),
    sa.Column('updated_at', nurture.db.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activity.id'], name=op.f('fk_channel_message_activity_id_activity'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_channel_message_campaign_id_campaign'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['trace_id'], ['trace.id'], name=op.f('fk_channel_message_trace_id_trace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_message')),
    sa.UniqueConstraint('trace_id', name=op.f('uq_channel_message_trace_id'))
    )
    with op.batch_alter_table('channel_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_channel_message_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index('ix_channel_message_due', ['channel', 'next_attempt_at'], unique=False, sqlite_where=sa.text("state = 'queued'"), postgresql_where=sa.text("state = 'queued'"))
        batch_op.create_index('ix_channel_message_sending', ['lease_until'], unique=False, sqlite_where=sa.text("state = 'sending'"), postgresql_where=sa.text("state = 'sending'"))


def downgrade() -> None:
    with op.batch_alter_table('channel_message', schema=None) as batch_op:
        batch_op.drop_index('ix_channel_message_sending', sqlite_where=sa.text("state = 'sending'"), postgresql_where=sa.text("state = 'sending'"))
        batch_op.drop_index('ix_channel_message_due', sqlite_where=sa.text("state = 'queued'"), postgresql_where=sa.text("state = 'queued'"))
        batch_op.drop_index(batch_op.f('ix_channel_message_campaign_id'))

    op.drop_table('channel_message')
