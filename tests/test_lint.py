"""ruff and mypy, as configured in pyproject.toml. mypy keeps its cache in ltoboot's (under
test-repos/), so that a fresh clone checks only what changed: 0.5 s instead of 7-40 s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.base import cache

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("tool", ["ruff", "mypy"])
def test_lint(tool: str) -> None:
    argv = {"ruff": ["ruff", "check", "."],
            "mypy": ["mypy", "--cache-dir", str(cache.cache_root() / "test-repos" / "mypy")]}
    got = subprocess.run([sys.executable, "-m", *argv[tool]], cwd=ROOT, capture_output=True,
                         text=True)
    assert got.returncode == 0, got.stdout + got.stderr
