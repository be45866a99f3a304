"""Thin by design: ltoboot's fixtures and hooks live in harness/pytest_plugin (entry point)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def recorded() -> Path:
    """Console logs recorded from real boots of our kernels, for the unit tests."""
    return Path(__file__).parent / "tests" / "data"
