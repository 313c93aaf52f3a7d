"""Fixtures for the REST API tests: the real app on the test database, users and tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import nurture.models  # noqa: F401  (every table in Base.metadata)
from nurture.accounts import tokens as account_tokens
from nurture.accounts import users
from nurture.clock import utcnow
from nurture.config import Settings
from nurture.db import Database
from nurture.runtime import Runtime
from nurture.web.app import create_app

ROLES = ("admin", "marketer", "viewer")


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    db: Database
    tokens: dict[str, str]
    user_ids: dict[str, int]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def as_role(self, role: str) -> TestClient:
        self.client.headers.update(self.headers(role))
        return self.client


@pytest.fixture
def api_db(db: Database) -> Database:
    """The migrated test database (every table comes from the migrations)."""
    return db


def make_app(db: Database, tmp_path: Path) -> FastAPI:
    settings = Settings(
        data_dir=tmp_path,
        database_url=db.url,
        secret_key="s" * 40,
        base_url="http://testserver",
        embedded_worker=False,
    )
    return create_app(Runtime(settings=settings, db=db))


@pytest.fixture
def api(api_db: Database, tmp_path: Path) -> Iterator[Api]:
    app = make_app(api_db, tmp_path)
    tokens: dict[str, str] = {}
    user_ids: dict[str, int] = {}
    now = utcnow()
    with api_db.transaction() as session:
        for role in ROLES:
            user = users.create_user(
                session, login=f"{role}@example.com", role=role, name=role.title(), now=now
            )
            token, _row = account_tokens.create_token(session, user, f"{role} token", now=now)
            tokens[role] = token
            user_ids[role] = user.id
    client = TestClient(app, raise_server_exceptions=False)
    yield Api(app=app, client=client, db=api_db, tokens=tokens, user_ids=user_ids)
    client.close()


@pytest.fixture
def admin(api: Api) -> TestClient:
    return api.as_role("admin")
