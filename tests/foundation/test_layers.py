"""Dependencies point one way (README "Architecture"): the import-linter layers contract in
pyproject.toml holds for the code as it is, and it does fire when a lower layer imports a
higher one — also from inside a function, the usual way of dodging an import cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_code_keeps_the_layers() -> None:
    result = _lint(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "nurture", copy / "nurture", ignore=shutil.ignore_patterns("__pycache__"))
    # the engine reaching up to a channel inside a function (as it once did)
    executors = copy / "nurture" / "engine" / "executors.py"
    executors.write_text(
        executors.read_text() + "\n\ndef _sneaky() -> None:\n    import nurture.channels.queue  # noqa\n"
    )
    result = _lint(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "nurture.engine is not allowed to import nurture.channels" in result.stdout
    assert "nurture.engine.executors -> nurture.channels.queue" in result.stdout
