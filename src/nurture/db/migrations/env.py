"""Alembic environment: runs against the connection handed over by nurture.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import nurture.models  # noqa: F401  (registers every table on Base.metadata)
from nurture.db.base import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `nurture migrate`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
