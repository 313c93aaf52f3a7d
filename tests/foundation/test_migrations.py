"""Migrations and models describe the same schema, and migrations run both ways."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

import nurture.models  # noqa: F401  (every table on Base.metadata)
from nurture.db import Base, Database, migrate


def test_migrated_schema_matches_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert database.is_up_to_date()


def test_migrations_have_one_head_and_downgrade_to_nothing(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    assert migrate.current_revision(db.engine) == migrate.head_revision()
    config = migrate.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    db.migrate()
    assert {t.name for t in Base.metadata.sorted_tables} <= set(inspect(db.engine).get_table_names())
    db.dispose()
