"""SQLite write transactions of one process take turns in arrival order (db.writers)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from nurture.db import Database
from nurture.db.writers import WriterQueue


def test_a_thread_that_commits_and_begins_again_cannot_starve_a_waiting_one(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'w.db'}")
    with db.transaction() as s:
        s.execute(text("CREATE TABLE log (who TEXT)"))
    stop = threading.Event()
    waited: list[float] = []

    def greedy() -> None:  # back-to-back write transactions of 20 ms each, like a draining engine
        while not stop.is_set():
            with db.transaction() as s:
                s.execute(text("INSERT INTO log VALUES ('greedy')"))
                time.sleep(0.02)

    thread = threading.Thread(target=greedy)
    thread.start()
    try:
        time.sleep(0.05)
        for _ in range(5):
            started = time.monotonic()
            with db.transaction() as s:
                s.execute(text("INSERT INTO log VALUES ('polite')"))
            waited.append(time.monotonic() - started)
    finally:
        stop.set()
        thread.join()
    # each turn comes after at most the greedy transaction in flight (plus scheduling slack)
    assert max(waited) < 1.0, waited
    with db.read() as s:
        assert s.execute(text("SELECT count(*) FROM log WHERE who = 'polite'")).scalar() == 5


def test_turns_follow_arrival_order() -> None:
    queue = WriterQueue(timeout=5)
    order: list[int] = []
    holder = threading.Event()
    release = threading.Event()

    def first() -> None:
        with queue.turn():
            holder.set()
            release.wait(5)
            order.append(0)

    def later(n: int) -> None:
        with queue.turn():
            order.append(n)

    threads = [threading.Thread(target=first)]
    threads[0].start()
    holder.wait(5)
    for n in range(1, 6):
        t = threading.Thread(target=later, args=(n,))
        t.start()
        threads.append(t)
        while len(queue._waiting) < n:  # noqa: SLF001 - wait until it is queued
            time.sleep(0.001)
    release.set()
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3, 4, 5]


def test_nested_turn_in_the_same_thread_does_not_hang() -> None:
    queue = WriterQueue(timeout=5)
    with queue.turn(), queue.turn():
        pass
    with queue.turn():  # released properly
        pass


def test_a_turn_that_never_comes_is_a_clear_database_locked_error() -> None:
    queue = WriterQueue(timeout=0.2)
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with queue.turn():
            held.set()
            done.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    with pytest.raises(OperationalError, match="database is locked"):
        with queue.turn():
            pass
    done.set()
    thread.join(5)
    assert not queue._waiting  # noqa: SLF001 - the timed-out waiter left the queue
    with queue.turn():
        pass
