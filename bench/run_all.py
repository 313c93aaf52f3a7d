"""Run every benchmark and print one table of what each is judged by (``make bench``).

    .venv/bin/python -m bench.run_all [--quick] [--only NAME[,NAME…]]

Each benchmark runs as its own process with its README command (``--quick``: the tiny sizes
of the test suite, to check the table end to end in a minute or two); the table lists, per
benchmark and back end, the lines where it states its ratio (or p99) against its baseline and
target. The full-size run takes hours on a 2-core machine; the README's table is written
from its output.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name → (full-size arguments, quick arguments); "{db}" is the back end
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "filter_count": (["--rows", "1000000", "--db", "{db}"], ["--rows", "300", "--repeat", "1", "--db", "{db}"]),
    "import_": (["--rows", "1000000", "--db", "{db}"], ["--rows", "300", "--db", "{db}"]),
    "enrol": (["--backend", "{db}"], ["--rows", "300", "--backend", "{db}"]),
    "execute": (["--backend", "{db}"], ["--rows", "300", "--batch", "100", "--backend", "{db}"]),
    "email_send": (["--rows", "100000", "--backend", "{db}"], ["--rows", "100", "--backend", "{db}"]),
    "tracking": (
        ["--backend", "{db}"],
        ["--rows", "100", "--rounds", "1", "--duration", "1", "--warmup", "1", "--backend", "{db}"],
    ),
    "event_latency": (["--backend", "{db}"], ["--events", "3", "--mode", "thread", "--backend", "{db}"]),
    "ui_pages": (
        ["--backend", "{db}"],
        ["--contacts", "300", "--campaigns", "3", "--traces", "600", "--requests", "3", "--backend", "{db}"],
    ),
    "scale_out": (["--rows", "200000", "--emails", "50000"], ["--rows", "300", "--emails", "50"]),
}
#: benchmarks that run on PostgreSQL only
PG_ONLY = {"scale_out"}
KEYWORDS = ("ratio", "p99", "target")


def run(name: str, args: list[str]) -> tuple[int, list[str], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT, capture_output=True, text=True
    )
    lines = [
        line.strip()
        for line in (proc.stdout + proc.stderr).splitlines()
        if any(k in line.lower() for k in KEYWORDS) and "Traceback" not in line
    ]
    return proc.returncode, lines, time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a check of the table)")
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    args = parser.parse_args(argv)
    chosen = [n for n in BENCHES if not args.only or n in args.only.split(",")]
    rows: list[tuple[str, str, int, list[str], float]] = []
    for name in chosen:
        full, quick = BENCHES[name]
        for db in (["postgresql"] if name in PG_ONLY else ["sqlite", "postgresql"]):
            template = quick if args.quick else full
            code, lines, seconds = run(name, [a.replace("{db}", db) for a in template])
            rows.append((name, db, code, lines, seconds))
            print(f"{name:14s} {db:10s} exit {code}  {seconds:6.0f} s", flush=True)
    print("\n| benchmark | back end | exit | what it printed (ratio vs baseline, target) |")
    print("|---|---|---|---|")
    for name, db, code, lines, _seconds in rows:
        text = "<br>".join(lines[-3:]) if lines else "(no figure printed)"
        print(f"| {name} | {db} | {code} | {text} |")
    return 0 if all(row[3] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
