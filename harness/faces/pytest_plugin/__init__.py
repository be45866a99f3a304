"""ltoboot's pytest plugin (entry point `ltoboot` in group pytest11): options, fixtures, hooks."""

from __future__ import annotations

from harness.faces.pytest_plugin.fixtures import (
    guest,
    guests,
    kernel,
    kernels,
    primary_arch,
)
from harness.faces.pytest_plugin.hooks import (
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_configure_node,
    pytest_generate_tests,
    pytest_runtest_makereport,
    pytest_runtest_teardown,
)

__all__ = [
    "guest",
    "guests",
    "kernel",
    "kernels",
    "primary_arch",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_configure_node",
    "pytest_generate_tests",
    "pytest_runtest_makereport",
    "pytest_runtest_teardown",
]
