"""Every benchmark runs at a tiny size in the suite, so none silently breaks.

The figures at this size mean nothing (fixed costs dominate), so a bench that reports its
target missed is fine here; a crash, a missing figure or an unexpected exit code is not.
The full-size commands and their figures are in the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = [b.strip() for b in os.environ.get("NURTURE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]

#: bench → (arguments for a tiny run, exit codes that mean "ran, target missed", text printed)
BENCHES: dict[str, tuple[list[str], set[int], str]] = {
    "filter_count": (["--rows", "300", "--repeat", "1"], {3}, "ratio"),
    "import_": (["--rows", "300"], {1}, "ratio"),
    "enrol": (["--rows", "300"], set(), "ratio"),
    "execute": (["--rows", "300", "--batch", "100"], set(), "ratio"),
    "event_latency": (["--events", "3", "--mode", "thread"], set(), "p99"),
    "email_send": (["--rows", "100"], set(), "ratio"),
    "tracking": (["--rows", "100", "--rounds", "1", "--duration", "1", "--warmup", "1"], set(), "ratio"),
    "ui_pages": (["--contacts", "300", "--campaigns", "3", "--traces", "600", "--requests", "3"], set(), "ratio"),
}
#: PostgreSQL only (the Celery engine runs on PostgreSQL): bench → (arguments, text printed)
PG_ONLY: dict[str, tuple[list[str], str]] = {
    "scale_out": (["--rows", "300", "--emails", "50"], "cpu ratio"),
}
#: benches whose back end is chosen with --db rather than --backend
DB_FLAG = {"filter_count", "import_"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bench", sorted(BENCHES))
def test_bench_runs_at_tiny_size(bench: str, backend: str) -> None:
    args, missed_codes, needle = BENCHES[bench]
    flag = ["--db", backend] if bench in DB_FLAG else ["--backend", backend]
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *flag, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert proc.returncode in {0, *missed_codes}, out[-3000:]
    assert needle in out.lower(), out[-3000:]


@pytest.mark.parametrize("bench", sorted(PG_ONLY))
def test_postgresql_bench_runs_at_tiny_size(bench: str) -> None:
    args, needle = PG_ONLY[bench]
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert needle in out.lower(), out[-3000:]
