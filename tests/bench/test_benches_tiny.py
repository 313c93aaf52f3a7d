"""Every benchmark runs at a tiny size in the suite, so none silently breaks.

The sizes are ``make bench``'s quick ones (:data:`bench.run_all.BENCHES`). The figures at this
size mean nothing (fixed costs dominate), so a bench that reports its target missed is fine
here; a crash, a missing figure or an unexpected exit code is not. The full-size commands and
their figures are in the README.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bench.run_all import BENCHES, PG_ONLY

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = [b.strip() for b in os.environ.get("NURTURE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b.strip()]

#: exit codes that mean "ran, target missed" (the other benches exit 0 either way)
MISSED = {"filter_count": {3}, "import_": {1}}
#: what each prints when it ran (default: its ratio)
FIGURE = {"event_latency": "p99", "scale_out": "cpu ratio"}

CASES = [
    (name, db)
    for name in sorted(BENCHES)
    for db in (["postgresql"] if name in PG_ONLY else BACKENDS)
]


@pytest.mark.parametrize(("bench", "backend"), CASES)
def test_bench_runs_at_tiny_size(bench: str, backend: str) -> None:
    args = [a.replace("{db}", backend) for a in BENCHES[bench][1]]
    proc = subprocess.run(
        [sys.executable, "-m", f"bench.{bench}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    assert proc.returncode in {0, *MISSED.get(bench, set())}, out[-3000:]
    assert FIGURE.get(bench, "ratio") in out.lower(), out[-3000:]
