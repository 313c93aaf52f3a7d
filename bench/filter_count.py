"""Benchmark: counting a filter with Nurture's compiled query vs hand-written SQL.

    python -m bench.filter_count --rows 1000000 --db sqlite
    python -m bench.filter_count --rows 1000000 --db postgresql [--pg-url postgresql+psycopg://…/postgres]

Loads ``--rows`` contacts (set-based: one ``INSERT … SELECT`` per table from a generated
series), about two tags each on two contacts in three, 20 salespeople, then counts the
three-level filter across a to-many relation

    ['&', ('country_code', 'in', ['FR', 'BE', 'DE']),
          '|', ('tags.name', '=', 'VIP'),
               '&', ('email', 'ilike', '@gmail'), ('salesperson.name', '!=', 'Bob')]

(archived contacts excluded) with ``nurture.audience.count_matching`` and with a
hand-written SQL query for the same set, in the same run on the same database: one warm-up
each, then ``--repeat`` alternating timed runs. The ratio compares the best wall time of
each (the least disturbed by whatever else the machine runs, as ``timeit`` does); medians,
and on SQLite the CPU time of this process, are printed alongside. Checks the two counts
are equal. Exit status 0 when the ratio is within the target (<= 1.5), 3 when above, 1 when
the counts differ.

PostgreSQL runs in a scratch database created for the run and dropped after it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from nurture.audience import count_matching
from nurture.db import Database

DEFAULT_PG = os.environ.get(
    "NURTURE_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
NOW = datetime(2026, 1, 1)
TARGET = 1.5
N_USERS = 20
N_TAGS = 50  # tag 1 is "VIP"
COUNTRIES = ["FR", "BE", "DE", "GB", "US", "ES", "IT", "NL", "CA", "BR"]
DOMAINS = ["gmail.com", "GMail.com", "example.org", "mail.fr", "yahoo.com", "gmail.fr"]

FILTER = [
    "&", ["country_code", "in", ["FR", "BE", "DE"]],
    "|", ["tags.name", "=", "VIP"],
    "&", ["email", "ilike", "@gmail"], ["salesperson.name", "!=", "Bob"],
]  # fmt: skip

# The same set, written by hand the way one would for this schema: a semi-join on the tag
# link table and a left join to the salesperson.
HAND_WRITTEN = {
    "sqlite": """
        SELECT count(*) FROM contact c
        LEFT JOIN user_account u ON u.id = c.salesperson_id
        WHERE c.active = 1
          AND c.country_code IN ('FR', 'BE', 'DE')
          AND (c.id IN (SELECT ct.contact_id FROM contact_tag ct
                        JOIN tag t ON t.id = ct.tag_id WHERE t.name = 'VIP')
               OR (c.email LIKE '%@gmail%' AND (u.name IS NULL OR u.name <> 'Bob')))
    """,
    "postgresql": """
        SELECT count(*) FROM contact c
        LEFT JOIN user_account u ON u.id = c.salesperson_id
        WHERE c.active
          AND c.country_code IN ('FR', 'BE', 'DE')
          AND (c.id IN (SELECT ct.contact_id FROM contact_tag ct
                        JOIN tag t ON t.id = ct.tag_id WHERE t.name = 'VIP')
               OR (c.email ILIKE '%@gmail%' AND (u.name IS NULL OR u.name <> 'Bob')))
    """,
}


# -- scratch databases ----------------------------------------------------------------


@contextmanager
def scratch_database(backend: str, pg_url: str) -> Iterator[Database]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="nurture-bench-") as folder:
            db = Database(f"sqlite:///{Path(folder) / 'bench.db'}")
            try:
                db.migrate()
                yield db
            finally:
                db.dispose()
        return
    name = f"nurture_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database(f"{pg_url.rsplit('/', 1)[0]}/{name}")
    try:
        db.migrate()
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- data -------------------------------------------------------------------------------


def _series(backend: str) -> str:
    """A CTE ``seq(n)`` of 1..:rows."""
    if backend == "postgresql":
        return "WITH seq(n) AS (SELECT generate_series(CAST(1 AS bigint), CAST(:rows AS bigint)))"
    return "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :rows)"


def _pick(values: list[str], salt: int) -> str:
    """A SQL CASE choosing one of ``values`` from a scrambled ``n``."""
    arms = " ".join(f"WHEN {i} THEN '{v}'" for i, v in enumerate(values))
    return f"CASE ((n * {salt}) % 1000003) % {len(values)} {arms} END"


def load(db: Database, rows: int) -> None:
    backend = db.dialect
    stamp = "'2026-01-01 00:00:00.000000'" if backend == "sqlite" else "TIMESTAMP '2026-01-01'"
    true = "1" if backend == "sqlite" else "TRUE"
    with db.engine.begin() as conn:
        for i in range(1, N_USERS + 1):
            name = "Bob" if i == 1 else f"User {i}"
            conn.execute(
                text(
                    "INSERT INTO user_account (id, login, name, email, role, active, created_at)"
                    " VALUES (:id, :login, :name, :email, 'marketer', :active, :at)"
                ),
                {"id": i, "login": f"user{i}", "name": name, "email": f"user{i}@corp.test",
                 "active": True, "at": NOW},
            )  # fmt: skip
        for i in range(1, N_TAGS + 1):
            conn.execute(
                text("INSERT INTO tag (id, name, color) VALUES (:id, :name, 0)"),
                {"id": i, "name": "VIP" if i == 1 else f"Tag {i}"},
            )
        email = (
            f"CASE WHEN (n * 7) % 13 = 0 THEN NULL ELSE 'person' || n || '@' || "
            f"{_pick(DOMAINS, 48271)} END"
        )
        country = f"CASE WHEN (n * 11) % 17 = 0 THEN NULL ELSE {_pick(COUNTRIES, 69621)} END"
        salesperson = f"NULLIF(((n * 40503) % 1000003) % {N_USERS + 1}, 0)"
        active = (
            f"CASE WHEN n % 50 = 0 THEN {'0' if backend == 'sqlite' else 'FALSE'} ELSE {true} END"
        )
        # The SQL text is built from this module's constants only; the row count is bound.
        conn.execute(
            text(
                f"{_series(backend)} "  # noqa: S608
                "INSERT INTO contact (id, name, email, country_code, salesperson_id, active, "
                "created_at, updated_at) "
                f"SELECT n, 'Contact ' || n, {email}, {country}, {salesperson}, {active}, "
                f"{stamp}, {stamp} FROM seq"
            ),
            {"rows": rows},
        )
        # Two tags on two contacts in three: a = 1 + h % 50, b = a shifted by 1..49.
        tag_a = f"1 + ((id * 2654435761) % 1000003) % {N_TAGS}"
        tag_b = f"1 + (({tag_a}) - 1 + 1 + (id * 31) % {N_TAGS - 1}) % {N_TAGS}"
        conn.execute(
            text(
                "INSERT INTO contact_tag (contact_id, tag_id) "  # noqa: S608
                f"SELECT id, {tag_a} FROM contact WHERE id % 3 <> 0 "
                f"UNION ALL SELECT id, {tag_b} FROM contact WHERE id % 3 <> 0"
            )
        )
        if backend == "postgresql":
            conn.execute(text("SELECT setval('contact_id_seq', (SELECT max(id) FROM contact))"))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


# -- timing -----------------------------------------------------------------------------


def timed(run: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, this process's CPU seconds, result) of one run."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=DEFAULT_PG, help="an existing PostgreSQL database")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    runs: dict[str, list[tuple[float, float]]] = {"nurture": [], "hand": []}
    with scratch_database(args.db, args.pg_url) as db:
        started = time.perf_counter()
        load(db, args.rows)
        print(
            f"loaded {args.rows:,} contacts on {args.db} in {time.perf_counter() - started:.1f} s"
        )
        hand_sql = text(HAND_WRITTEN[args.db])
        with db.read() as session:

            def nurture() -> int:
                return count_matching(session, "contact", FILTER, now=NOW)

            def by_hand(s: Session = session) -> int:
                return int(s.execute(hand_sql).scalar_one())

            counts = {"nurture": nurture(), "hand": by_hand()}  # warm-up
            for _ in range(args.repeat):
                for name, run in (("nurture", nurture), ("hand", by_hand)):
                    wall, cpu, counts[name] = timed(run)
                    runs[name].append((wall, cpu))

    def best(name: str) -> float:
        return min(wall for wall, _cpu in runs[name])

    def median(name: str) -> float:
        return statistics.median(wall for wall, _cpu in runs[name])

    ratio = best("nurture") / best("hand")
    print(f"filter: {FILTER}")
    print(f"matching contacts: nurture {counts['nurture']:,}, hand-written {counts['hand']:,}")
    print(f"{'':24} {'best':>9} {'median':>9}   (of {args.repeat} alternating runs, wall ms)")
    for name, label in (("nurture", "nurture compiled query"), ("hand", "hand-written SQL")):
        line = f"{label:24} {best(name) * 1000:9.1f} {median(name) * 1000:9.1f}"
        if args.db == "sqlite":  # the query runs in this process: its CPU time is telling
            cpu = min(c for _wall, c in runs[name])
            line += f"   (best CPU {cpu * 1000:.1f} ms)"
        print(line)
    print(f"median ratio            {median('nurture') / median('hand'):9.2f}")
    verdict = "OK" if ratio <= TARGET else "ABOVE TARGET"
    print(f"ratio (best of runs)    {ratio:9.2f}   target <= {TARGET}: {verdict}")
    if counts["nurture"] != counts["hand"]:
        print("ERROR: the two queries count different sets", file=sys.stderr)
        return 1
    return 0 if ratio <= TARGET else 3


if __name__ == "__main__":
    sys.exit(main())
