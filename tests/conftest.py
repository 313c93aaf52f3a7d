"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

``NURTURE_TEST_BACKENDS`` (default ``sqlite,postgresql``) selects the back ends;
``NURTURE_TEST_PG_URL`` points at a PostgreSQL server (default: the local one). Each
session creates its own PostgreSQL database and drops it at the end. When PostgreSQL is
unreachable, its tests fail under CI=true and are skipped (with the reason) otherwise.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from nurture.db import Database

# --------------------------------------------------------------------------- network guard
# No network call (SMTP, HTTP, DNS) may happen while a database write transaction is open:
# queue in the transaction, deliver after commit. ``Database.transaction`` counts the write
# transactions a thread has open; socket connects/sends and DNS look-ups made by that
# thread meanwhile raise :class:`NetworkInTransaction` and fail the test (checked at
# teardown too, in case the product code caught the exception). The database drivers are
# exempt by construction: psycopg talks to PostgreSQL through libpq (C, not Python
# sockets) and SQLite has no socket.


class NetworkInTransaction(AssertionError):
    """A socket was used while this thread had a database write transaction open."""


_open_writes = threading.local()
network_violations: list[str] = []


class _Depth:
    value = 0


def _depth() -> _Depth:
    depth = getattr(_open_writes, "depth", None)
    if depth is None:
        depth = _open_writes.depth = _Depth()
    return depth


def write_transactions_open() -> int:
    return _depth().value


def _install_network_guard() -> None:
    original_transaction = Database.transaction

    @contextmanager
    def transaction(self: Database) -> Iterator[Session]:
        # The counter of the thread that opened the transaction: a generator dependency
        # (FastAPI's WriteSession) may be closed on another thread of the pool.
        depth = _depth()
        depth.value += 1
        try:
            with original_transaction(self) as session:
                yield session
        finally:
            depth.value -= 1

    Database.transaction = transaction  # type: ignore[method-assign]

    def guard(what: str, call: Callable[..., Any], *, method: bool) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            local = method and args and getattr(args[0], "family", None) == socket.AF_UNIX
            if write_transactions_open() and not local:  # (an event loop's self-pipe is local)
                target = args[1] if method and len(args) > 1 else (args[0] if args else "")
                message = f"{what}({target!r}) while a database write transaction is open"
                network_violations.append(message)
                raise NetworkInTransaction(message)
            return call(*args, **kwargs)

        return guarded

    for name in ("connect", "connect_ex", "send", "sendall", "sendto"):
        setattr(socket.socket, name, guard(f"socket.{name}", getattr(socket.socket, name), method=True))
    socket.getaddrinfo = guard("socket.getaddrinfo", socket.getaddrinfo, method=False)  # type: ignore[assignment]


_install_network_guard()


@pytest.fixture(autouse=True)
def no_network_in_transactions() -> Iterator[None]:
    """Fails the test if it made a network call inside a database write transaction."""
    network_violations.clear()
    yield
    found, network_violations[:] = list(network_violations), []
    if found:
        pytest.fail("network call inside a database transaction: " + "; ".join(found[:3]), pytrace=False)


BACKENDS = [b.strip() for b in os.environ.get("NURTURE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]
PG_ADMIN_URL = os.environ.get("NURTURE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_database() -> tuple[str, str]:
    name = f"nurture_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if os.environ.get("CI") == "true":
            raise RuntimeError(f"PostgreSQL is required in CI and is unreachable: {exc}") from exc
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {exc}")
    finally:
        admin.dispose()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A migrated database of one back end, shared by the tests of a session."""
    backend: str = request.param
    pg_name = None
    if backend == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "nurture.db"
        url = f"sqlite:///{path}"
    elif backend == "postgresql":
        pg_name, url = _pg_database()
    else:
        raise ValueError(f"unknown test backend {backend!r}")
    db = Database(url)
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()
        if pg_name:
            _drop_pg_database(pg_name)


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The shared database, emptied after each test."""
    try:
        yield database
    finally:
        database.wipe()


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    """A session in a transaction committed at the end of the test body."""
    with db.transaction() as s:
        yield s
