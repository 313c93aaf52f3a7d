"""First come, first served: the write transactions of one process, in arrival order.

SQLite has one writer at a time. Between processes its busy handler arbitrates (a waiting
connection sleeps and polls); between the threads of one process that is unfair: a thread
that commits and at once begins again (the engine draining a backlog) retakes the lock
before a thread that has been polling for it (the email sender recording what it sent, a
web request recording a click) wakes up, and the latter can wait for the whole backlog.
:class:`WriterQueue` hands the lock over in arrival order instead: a thread that commits
while others wait passes it to the first of them.

A thread that already holds it (a write transaction opened inside another: a bug that
SQLite itself reports as "database is locked" after its busy timeout) is let through, so
nothing here can hang where SQLite would not.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import OperationalError


class WriterQueue:
    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._owner: int | None = None

    @contextmanager
    def turn(self) -> Iterator[None]:
        me = threading.get_ident()
        if self._owner == me:  # nested: leave it to SQLite (see module doc)
            yield
            return
        self._acquire(me)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, me: int) -> None:
        with self._lock:
            if self._owner is None and not self._waiting:
                self._owner = me
                return
            event = threading.Event()
            self._waiting.append(event)
        event.wait(self.timeout)
        with self._lock:
            if event.is_set():  # handed over (possibly just as the wait timed out)
                self._owner = me
                return
            self._waiting.remove(event)
        raise OperationalError(
            "BEGIN IMMEDIATE",
            None,
            sqlite3.OperationalError(
                f"database is locked: another thread's write transaction held it for {self.timeout:.0f} s"
            ),
        )

    def _release(self) -> None:
        with self._lock:
            self._owner = None
            if self._waiting:
                self._waiting.popleft().set()  # the next owner sets itself when it wakes
                self._owner = -1  # reserved for it: no newcomer can jump the queue
