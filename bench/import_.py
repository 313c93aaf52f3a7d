"""Benchmark: Nurture's CSV importer vs a bare ``executemany`` of the same rows.

    python -m bench.import_ --rows 1000000 --db sqlite
    python -m bench.import_ --rows 1000000 --db postgresql [--pg-url postgresql+psycopg://…/postgres]

Generates a contacts CSV (name, email with mixed case, phone in international or national
form or empty, company, country, city, language), then in the same run and on the same
empty table:

1. imports it with ``nurture.records.csv_import.import_csv`` in a child process (so its peak
   RSS is the importer's own), and
2. streams the same file with ``csv.reader`` and inserts the raw rows with a bare
   SQLAlchemy Core ``executemany`` in batches of the same size (no validation, no
   normalisation, no tags) — and, for reference, with the DB-API cursor's ``executemany``.

Prints both times, the ratio (target <= 3) and the importer's peak RSS (target < 300 MB).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text

from bench._engine_common import peak_rss_mb
from nurture.db import Database
from nurture.records.models import Contact

BATCH = 5000
NOW = datetime(2026, 1, 1)
HEADER = ["name", "email", "phone", "company_name", "country_code", "city", "lang"]
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# country, language, cities, an international and a national template (X = random digit)
COUNTRIES = [
    ("FR", "fr_FR", ["Paris", "Lyon", "Lille"], "+33 6 XX XX XX XX", "06 XX XX XX XX"),
    ("DE", "de_DE", ["Berlin", "Hamburg", "Munich"], "+49 151 XXXXXXXX", "0151 XXXXXXXX"),
    ("GB", "en_GB", ["London", "Leeds", "York"], "+44 7911 XXXXXX", "07911 XXXXXX"),
    ("US", "en_US", ["Boston", "Austin", "Denver"], "+1 212-555-XXXX", "(415) 555-XXXX"),
    ("BE", "fr_BE", ["Brussels", "Ghent", "Namur"], "+32 470 XX XX XX", "0470 XX XX XX"),
    ("ES", "es_ES", ["Madrid", "Seville", "Bilbao"], "+34 612 XX XX XX", "612 XX XX XX"),
    ("IT", "it_IT", ["Rome", "Milan", "Turin"], "+39 06 XXXX XXXX", "06 XXXX XXXX"),
    ("NL", "nl_NL", ["Utrecht", "Delft", "Leiden"], "+31 6 XXXXXXXX", "06 XXXXXXXX"),
    ("CA", "en_CA", ["Toronto", "Ottawa", "Montreal"], "+1 416-555-XXXX", "(613) 555-XXXX"),
    ("BR", "pt_BR", ["Recife", "Curitiba", "Natal"], "+55 11 9XXXX-XXXX", "(21) 9XXXX-XXXX"),
]
FIRST = ["Camille", "Léa", "Lukas", "Oliver", "Emma", "Noah", "Lucía", "Giulia", "Daan", "Ana"]
LAST = ["Martin", "Müller", "Smith", "Garcia", "Rossi", "de Jong", "Silva", "Peeters", "Roy"]
DOMAINS = [f"Mail{i}.Example.com" for i in range(40)] + ["GMAIL.com", "orange.fr", "web.de"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Soylent", "", ""]


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isascii() and c not in " ")


def _fill(template: str, rng: random.Random) -> str:
    return "".join(str(rng.randrange(10)) if c == "X" else c for c in template)


def generate(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            code, lang, cities, intl, natl = COUNTRIES[i % len(COUNTRIES)]
            first, last = rng.choice(FIRST), rng.choice(LAST)
            roll = rng.random()
            phone = _fill(intl, rng) if roll < 0.5 else _fill(natl, rng) if roll < 0.8 else ""
            local = _ascii(f"{first}.{last}")
            email = f"{local}{i}@{rng.choice(DOMAINS)}"
            writer.writerow(
                [f"{first} {last}", email, phone, rng.choice(COMPANIES), code,
                 rng.choice(cities), lang]
            )  # fmt: skip


def run_importer(url: str, path: Path) -> dict[str, Any]:
    """Child process: import the file with Nurture's importer."""
    from nurture.records.csv_import import import_csv

    db = Database(url)
    start, cpu = time.perf_counter(), time.process_time()
    result = import_csv(
        db=db, model="contact", source=path, now=NOW, batch_size=BATCH, progress=False
    )
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    db.dispose()
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "created": result.created,
        "errors": result.error_count,
        "peak_rss_mb": peak_rss_mb(),
    }


def _raw_rows(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        yield from reader


def run_core_executemany(db: Database, path: Path) -> tuple[float, float]:
    """Bare SQLAlchemy Core executemany of the raw rows (no checks), batches of BATCH."""
    statement = insert(Contact)
    start, cpu = time.perf_counter(), time.process_time()
    with db.engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for raw in _raw_rows(path):
            row: dict[str, Any] = dict(zip(HEADER, raw, strict=True))
            row["active"] = True
            row["created_at"] = NOW
            row["updated_at"] = NOW
            batch.append(row)
            if len(batch) >= BATCH:
                conn.execute(statement, batch)
                batch = []
        if batch:
            conn.execute(statement, batch)
    return time.perf_counter() - start, time.process_time() - cpu


def run_dbapi_executemany(db: Database, path: Path) -> float:
    """The same rows through the driver's cursor.executemany (reference only)."""
    columns = [*HEADER, "active", "created_at", "updated_at"]
    mark = "?" if db.dialect == "sqlite" else "%s"
    sql = (
        f"INSERT INTO contact ({', '.join(columns)}) "  # noqa: S608 - fixed column names
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    stamp: Any = NOW.isoformat(sep=" ") if db.dialect == "sqlite" else NOW
    start = time.perf_counter()
    with db.engine.begin() as conn:
        cursor = conn.connection.cursor()
        batch: list[list[Any]] = []
        for raw in _raw_rows(path):
            batch.append([*raw, True, stamp, stamp])
            if len(batch) >= BATCH:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    return time.perf_counter() - start


def _scratch_database(backend: str, workdir: Path, pg_url: str) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.db'}", None
    name = f"nurture_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{pg_url.rsplit('/', 1)[0]}/{name}", name


def _drop(pg_url: str, name: str) -> None:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_contacts(db: Database) -> None:
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("TRUNCATE contact_tag, contact RESTART IDENTITY CASCADE"))
        else:
            conn.execute(text("DELETE FROM contact_tag"))
            conn.execute(text("DELETE FROM contact"))
    if db.dialect == "sqlite":  # start each run from the same compact file
        raw = db.engine.raw_connection()
        try:
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
        finally:
            raw.close()


def _count(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM contact")).scalar_one())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("NURTURE_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--workdir", type=Path, help="Keep files here (default: a temp dir).")
    parser.add_argument("--repeat", type=int, default=1, help="Runs; the best time counts.")
    parser.add_argument("--child-import", nargs=2, metavar=("URL", "CSV"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child_import:
        url, csv_path = args.child_import
        print(json.dumps(run_importer(url, Path(csv_path))))
        return 0

    with tempfile.TemporaryDirectory(prefix="nurture-bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"contacts-{args.rows}.csv"
        if not path.exists():
            start = time.perf_counter()
            generate(path, args.rows)
            print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) "
                  f"in {time.perf_counter() - start:.1f}s")  # fmt: skip
        url, pg_name = _scratch_database(args.db, workdir, args.pg_url)
        db = Database(url)
        imports: list[dict[str, Any]] = []
        cores: list[tuple[float, float]] = []
        dbapis: list[float] = []
        try:
            db.migrate()
            _empty_contacts(db)
            for _ in range(args.repeat):  # interleaved, so both see the same machine load
                child = subprocess.run(
                    [sys.executable, "-m", "bench.import_", "--child-import", url, str(path)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                imports.append(json.loads(child.stdout.strip().splitlines()[-1]))
                assert _count(db) == imports[-1]["created"] == args.rows
                _empty_contacts(db)
                cores.append(run_core_executemany(db, path))
                assert _count(db) == args.rows
                _empty_contacts(db)
                dbapis.append(run_dbapi_executemany(db, path))
                assert _count(db) == args.rows
                _empty_contacts(db)
        finally:
            db.dispose()
            if pg_name:
                _drop(args.pg_url, pg_name)

    imported = min(imports, key=lambda r: r["seconds"])
    core, core_cpu = min(cores)
    dbapi = min(dbapis)
    ratio = imported["seconds"] / core
    rss = max(r["peak_rss_mb"] for r in imports)
    print(f"backend            {args.db}, {args.rows:,} rows, best of {args.repeat}")
    print(f"nurture import     {imported['seconds']:.1f} s  (CPU {imported['cpu']:.1f} s)")
    print(f"bare executemany   {core:.1f} s  (CPU {core_cpu:.1f} s; SQLAlchemy Core)")
    print(f"ratio              {ratio:.2f}  (target <= 3)")
    print(f"reference          DB-API cursor.executemany {dbapi:.1f} s "
          f"(ratio {imported['seconds'] / dbapi:.2f})")  # fmt: skip
    print(f"importer peak RSS  {rss:.0f} MB  (target < 300 MB)")
    ok = ratio <= 3 and rss < 300
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
