"""The code base stays ruff- and mypy-clean: checked with the rest of the suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint_and_format() -> None:
    lint = _run(sys.executable, "-m", "ruff", "check", "src", "tests", "benchmarks", "tools")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(
        sys.executable, "-m", "ruff", "format", "--check", "src", "tests", "benchmarks", "tools"
    )
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy_strict() -> None:
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr
