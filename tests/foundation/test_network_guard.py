"""The test suite's guard: no network call while a database write transaction is open."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from nurture.db import Database
from tests.conftest import NetworkInTransaction, network_violations


@pytest.fixture
def listener() -> Iterator[tuple[str, int]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()
    finally:
        server.close()


def test_a_connect_inside_a_write_transaction_fails_the_test(db: Database, listener: tuple[str, int]) -> None:
    with pytest.raises(NetworkInTransaction, match="write transaction"):
        with db.transaction():
            with socket.create_connection(listener, timeout=2):
                pass  # pragma: no cover - the connect is refused by the guard
    assert network_violations, "the violation is recorded for the teardown check too"
    network_violations.clear()  # this test provoked it on purpose


def test_a_send_on_an_open_socket_inside_a_write_transaction_fails(db: Database, listener: tuple[str, int]) -> None:
    with socket.create_connection(listener, timeout=2) as sock:  # outside: allowed
        with pytest.raises(NetworkInTransaction):
            with db.transaction():
                sock.sendall(b"hello")
        sock.sendall(b"after commit")  # allowed again
    assert len(network_violations) == 1
    network_violations.clear()


def test_dns_inside_a_write_transaction_fails(db: Database) -> None:
    with pytest.raises(NetworkInTransaction):
        with db.transaction():
            socket.getaddrinfo("localhost", 80)
    network_violations.clear()


def test_reads_other_threads_and_after_commit_are_allowed(db: Database, listener: tuple[str, int]) -> None:
    with db.read():
        socket.create_connection(listener, timeout=2).close()
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            socket.create_connection(listener, timeout=2).close()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    with db.transaction():  # this thread's transaction does not hold other threads back
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(5)
    assert errors == []
    socket.create_connection(listener, timeout=2).close()
    assert network_violations == []
