"""Thin by design: ltoboot's fixtures and hooks live in harness/pytest_plugin (entry point).
What is the suite's own: the recorded logs, and its opt-in tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OPT_IN = "opt_in"


@pytest.fixture(scope="session")
def recorded() -> Path:
    """Console logs recorded from real boots of our kernels, for the unit tests."""
    return Path(__file__).parent / "tests" / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{OPT_IN}(env, why): run only when the environment variable `env` is 1 "
        "(what is left out of the default suite, named in the README)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        mark = item.get_closest_marker(OPT_IN)
        if mark is not None and os.environ.get(mark.args[0]) != "1":
            item.add_marker(pytest.mark.skip(reason=f"opt-in: {mark.args[0]}=1 {mark.args[1]}"))
