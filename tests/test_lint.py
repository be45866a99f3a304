"""ruff and mypy, as configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("tool", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_lint(tool: list[str]) -> None:
    got = subprocess.run([sys.executable, "-m", *tool], cwd=ROOT, capture_output=True,
                         text=True)
    assert got.returncode == 0, got.stdout + got.stderr
