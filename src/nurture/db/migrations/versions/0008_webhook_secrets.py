"""webhook actions get their own secret

Webhook actions saved without a secret signed with NURTURE_SECRET_KEY, the master key
from which session and tracking keys derive. Each gets a generated secret of its own;
operators read it once with ``POST /api/v1/server-actions/{id}/rotate-secret``.

Revision ID: 0008
Revises: 0007
"""

import json
import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    table = sa.table(
        'server_action',
        sa.column('id', sa.Integer()),
        sa.column('action_type', sa.String()),
        sa.column('payload', sa.Text()),
    )
    rows = bind.execute(
        sa.select(table.c.id, table.c.payload).where(table.c.action_type == 'webhook')
    ).all()
    for row_id, raw in rows:
        try:
            payload = json.loads(raw or '{}')
        except ValueError:
            continue
        if not isinstance(payload, dict) or payload.get('secret'):
            continue
        payload['secret'] = secrets.token_urlsafe(32)
        bind.execute(
            table.update().where(table.c.id == row_id).values(payload=json.dumps(payload))
        )


def downgrade() -> None:
    pass  # the generated secrets stay: they are valid payloads for the previous schema
