"""Shared setup for the engine benchmarks (enrol, execute, event latency)."""

from __future__ import annotations

import argparse
import os
import resource
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import create_engine, text

from nurture.db import Database

PG_ADMIN = os.environ.get("NURTURE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
T = TypeVar("T")


def parse_args(description: str, default_rows: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=default_rows)
    return parser.parse_args()


def peak_rss_mb() -> float:
    """Peak resident set of this process (VmHWM: unlike ``ru_maxrss`` it is not inherited
    from the parent across fork/exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def backends(choice: str) -> list[str]:
    return ["sqlite", "postgresql"] if choice == "both" else [choice]


@contextmanager
def fresh_database(backend: str, name: str) -> Iterator[Database]:
    """An empty, migrated database for one benchmark run (dropped afterwards on PostgreSQL)."""
    if backend == "sqlite":
        path = f"/tmp/nurture-bench-{name}.db"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        db = Database(f"sqlite:///{path}")
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()
        return
    dbname = f"nurture_bench_{name}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{dbname}"'))
    db = Database(PG_ADMIN.rsplit("/", 1)[0] + f"/{dbname}")
    db.migrate()
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin.dispose()


def generate_contacts(db: Database, rows: int, *, now: str = "2026-01-01 00:00:00") -> None:
    """``rows`` contacts with distinct e-mail addresses, made set-based in the database."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(
                text(
                    "INSERT INTO contact (name, email, country_code, active, created_at, updated_at) "
                    "SELECT 'Contact ' || g, 'user' || g || '@example.com', "
                    "CASE WHEN g % 2 = 0 THEN 'FR' ELSE 'BE' END, true, "
                    "CAST(:now AS timestamp), CAST(:now AS timestamp) "
                    "FROM generate_series(1, :rows) AS g"
                ),
                {"rows": rows, "now": now},
            )
        else:
            conn.execute(
                text(
                    "WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :rows) "
                    "INSERT INTO contact (name, email, country_code, active, created_at, updated_at) "
                    "SELECT 'Contact ' || g, 'user' || g || '@example.com', "
                    "CASE WHEN g % 2 = 0 THEN 'FR' ELSE 'BE' END, 1, :now, :now FROM seq"
                ),
                {"rows": rows, "now": now + ".000000"},
            )
    analyse(db)


def analyse(db: Database) -> None:
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with db.engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def clear_engine_rows(db: Database) -> None:
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("TRUNCATE trace, participant RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("DELETE FROM trace"))
            conn.execute(text("DELETE FROM participant"))
    analyse(db)


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def fmt(seconds: float) -> str:
    return f"{seconds:8.2f} s"


def report(name: str, rows: dict[str, Any]) -> None:
    print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in rows.items()), flush=True)
