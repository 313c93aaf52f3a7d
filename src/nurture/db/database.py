"""One object that owns the engine and hands out sessions, shared by server, CLI and workers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from nurture.db import engine as engine_mod
from nurture.db import migrate
from nurture.db.base import Base
from nurture.db.writers import WriterQueue


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine: Engine = engine_mod.make_engine(url, echo=echo)
        self.sessions = engine_mod.session_factory(self.engine)
        # SQLite: this process's write transactions take turns in arrival order.
        self._writers = (
            WriterQueue(engine_mod.SQLITE_BUSY_TIMEOUT_MS / 1000) if self.dialect == "sqlite" else None
        )

    def write_turn(self) -> AbstractContextManager[None]:
        """Hold this process's turn to write (SQLite; nothing to wait for on PostgreSQL).

        :meth:`transaction` takes it; code that writes through the engine directly
        (``engine.begin()``) should take it around its transaction too."""
        return self._writers.turn() if self._writers is not None else nullcontext()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one write transaction, committed on success."""
        with self.write_turn(), engine_mod.transaction(self.sessions) as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only (never takes SQLite's write lock)."""
        with engine_mod.read_session(self.sessions) as session:
            yield session

    def migrate(self) -> None:
        migrate.upgrade(self.engine)

    def is_up_to_date(self) -> bool:
        return migrate.current_revision(self.engine) == migrate.head_revision()

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(text("SELECT 1")).scalar() == 1

    def wipe(self) -> None:
        """Delete every row of every table (tests and benchmarks only)."""
        tables = list(reversed(Base.metadata.sorted_tables))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                names = ", ".join(f'"{t.name}"' for t in tables)
                conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
            else:
                for table in tables:
                    conn.execute(table.delete())
                has_seq = conn.exec_driver_sql(
                    "SELECT 1 FROM sqlite_master WHERE name='sqlite_sequence'"
                ).first()
                if has_seq:
                    conn.exec_driver_sql("DELETE FROM sqlite_sequence")

    def dispose(self) -> None:
        self.engine.dispose()
