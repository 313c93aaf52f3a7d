"""Celery engine tests: PostgreSQL only (several machines share one PostgreSQL; SQLite is
the embedded, one-process mode), Redis and RabbitMQ of this machine as brokers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nurture.db import Database
from tests.conftest import _drop_pg_database, _pg_database


@pytest.fixture
def pg() -> Iterator[Database]:
    """A migrated PostgreSQL database of its own (processes of the test connect to it)."""
    name, url = _pg_database()
    db = Database(url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()
        _drop_pg_database(name)
