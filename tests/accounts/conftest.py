"""Fixtures for the accounts tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

import nurture.models  # noqa: F401
from nurture.accounts import passwords

# TEMPORARY until the 0003 migration exists: create the tables that no migration has yet.
from nurture.db import Base, Database


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    Base.metadata.create_all(database.engine, checkfirst=True)
    try:
        yield database
    finally:
        database.wipe()


@pytest.fixture
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[PasswordHasher]:
    """Cheap Argon2 parameters for tests that hash many times."""
    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", cheap.hash("dummy"))
    yield cheap
