"""Hooks: options, one parametrization per kernel, one xdist group per kernel, failure kinds."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any, Protocol

import pytest

from harness.base import progress
from harness.base.arch import PREFERRED
from harness.base.errors import KernelFailure
from harness.kernel import kbuild
from harness.kernel.model import SERVED, BuildSpec
from harness.runs.options import KERNEL_OPTIONS, kernel_specs, spec_from, split_arches

# Saved before pytest captures fd 2, so build progress reaches the terminal (xdist workers too).
_PROGRESS_FD = os.dup(2)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ltoboot", "ltoboot: LTO kernels in QEMU")
    for option in KERNEL_OPTIONS:
        option.add(group.addoption)
    parser.addini("ltoboot_fetched_copy", type="bool", default=False,
                  help="also check the primary kernel as fetched: exported as TuxMake "
                       "artifacts, served on 127.0.0.1 and downloaded back")


_SPECS = pytest.StashKey[tuple[BuildSpec, ...]]()


def selected_specs(config: pytest.Config) -> list[BuildSpec]:
    """The kernels the options select, worked out once per session (with --kernel that reads
    each image, maybe downloading it) rather than once per test item."""
    if _SPECS not in config.stash:
        config.stash[_SPECS] = tuple(kernel_specs(config.getoption))
    specs: tuple[BuildSpec, ...] = config.stash[_SPECS]
    return list(specs)


def selected_arches(config: pytest.Config) -> list[str]:
    if config.getoption("kernel"):
        return [s.arch for s in selected_specs(config)]
    return split_arches(config.getoption("arch"))


def primary(config: pytest.Config) -> str:
    """The arch for tests that need one kernel only: x86_64 when selected."""
    arches = selected_arches(config)
    return PREFERRED if PREFERRED in arches else arches[0]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ltoboot_group(lto=None, arch=None): run in the xdist group of the kernel "
        "of this arch (default: the primary one) and LTO mode (default: --lto)")
    config.addinivalue_line("markers", "boot: boots a real kernel in QEMU")
    # pytest-xdist registers it too, but our hooks add it even when xdist is not in use
    config.addinivalue_line("markers", "xdist_group(name): run in one xdist worker")

    def sink(line: str) -> None:
        os.write(_PROGRESS_FD, (line + "\n").encode(errors="replace"))

    progress.set_sink(sink)
    if _pause_pools not in kbuild.BEFORE_BUILD:
        kbuild.BEFORE_BUILD.append(_pause_pools)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kernel_spec" in metafunc.fixturenames:
        config = metafunc.config
        specs = sorted(selected_specs(config), key=lambda s: s.arch)
        if config.getini("ltoboot_fetched_copy") and not config.getoption("kernel"):
            specs.append(spec_from(config.getoption, primary(config), prebuilt=SERVED))
        metafunc.parametrize("kernel_spec", specs, ids=[s.label for s in specs],
                             scope="session")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Before xdist reads the groups: all tests of one kernel go to one worker, one boot.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "kernel_spec" in callspec.params:
            item.add_marker(pytest.mark.xdist_group(callspec.params["kernel_spec"].label))
        elif (mark := item.get_closest_marker("ltoboot_group")) is not None:
            lto = mark.kwargs.get("lto") or (mark.args[0] if mark.args else None)
            arch = mark.kwargs.get("arch") or primary(config)
            item.add_marker(pytest.mark.xdist_group(f"{arch}-{lto or config.getoption('lto')}"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: tell each worker how tests are distributed (its own --dist says "no")."""
    node.workerinput["ltoboot_dist"] = node.config.getoption("dist")


class _Pool(Protocol):
    def pause(self) -> None: ...

    def close(self) -> None: ...


# this worker's guest pools (fixtures.Guests), closed when its tests move on to another group,
# paused between tests and while the worker builds
POOLS: list[_Pool] = []


def _pause_pools() -> None:
    for pool in POOLS:
        pool.pause()


def _group(item: pytest.Item | None) -> str | None:
    mark = item.get_closest_marker("xdist_group") if item is not None else None
    return str(mark.args[0]) if mark is not None and mark.args else None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """The last test of a group closes the worker's guests (xdist runs a group's tests one
    after another); after any other test they pause until their next use. An idle TCG guest
    still costs 2-9 % of a core (its timer ticks): left running, a worker's guests (and their
    crash companions) took two thirds of a core from the builds of a cold run."""
    group = _group(item)
    # without xdist's groups, one group's tests need not follow one another
    if getattr(item.config, "workerinput", {}).get("ltoboot_dist") == "loadgroup" \
            and group is not None and group != _group(nextitem):
        for pool in POOLS:
            pool.close()
    else:
        _pause_pools()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report = outcome.get_result()
    # A kernel that fails to boot is the kernel's fault: a test failure, not a harness error.
    if call.when == "setup" and call.excinfo is not None \
            and call.excinfo.errisinstance(KernelFailure):
        report.when = "call"
