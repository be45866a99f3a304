"""Fixtures: the built kernel, a booted guest shared by all checks of that kernel, factories."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from harness.base import cache
from harness.base.errors import KernelFailure, LtobootError
from harness.faces.pytest_plugin.hooks import POOLS, primary
from harness.guest import boot
from harness.guest.session import Guest
from harness.kernel import artifacts
from harness.kernel.model import SERVED, BuildSpec, Kernel
from harness.kernel.obtain import obtain
from harness.runs.options import spec_from


class Kernels:
    """Builds (through the machine-wide cache) and remembers kernels for this worker."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._built: dict[BuildSpec, Kernel | LtobootError] = {}
        self._server: artifacts.Server | None = None

    def spec(self, arch: str, **overrides: Any) -> BuildSpec:
        return spec_from(self.config.getoption, arch, **overrides)

    def get(self, spec: BuildSpec | None = None, /, **overrides: Any) -> Kernel:
        if spec is None:
            spec = self.spec(overrides.pop("arch", primary(self.config)), **overrides)
        if spec not in self._built:
            try:
                self._built[spec] = self._served(spec) if spec.prebuilt == SERVED \
                    else obtain(spec)
            except LtobootError as e:
                self._built[spec] = e
        got = self._built[spec]
        if isinstance(got, LtobootError):
            raise got
        return got

    def _served(self, spec: BuildSpec) -> Kernel:
        """Our build of `spec`, exported as TuxMake artifacts, served on 127.0.0.1, fetched."""
        exported = artifacts.export(self.get(dataclasses.replace(spec, prebuilt=None)))
        if self._server is None:
            self._server = artifacts.Server(cache.cache_root() / "exports")
        return obtain(dataclasses.replace(spec, prebuilt=self._server.url(exported)))

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


class Guests:
    """One booted guest per kernel in this worker; a boot failure is remembered and repeated.

    At most MAX_LIVE guests run at once: an idle TCG guest still costs 2-3 % of a core (its
    timer ticks), and a session boots dozens (every variant), which slowed a cold run's
    builds by a third. Booting one more closes the least recently used, which is booted again
    if a later test asks for it (a second or two)."""

    MAX_LIVE = 4  # a test uses two at once (a kernel and its reference), never more

    def __init__(self, accel: str) -> None:
        self.accel = accel
        self._guests: dict[str, Guest | KernelFailure] = {}
        self._live: list[Guest] = []  # least recently used first

    def _admit(self, g: Guest) -> Guest:
        while len(self._live) >= self.MAX_LIVE:
            old = self._live.pop(0)
            self._guests = {k: v for k, v in self._guests.items() if v is not old}
            old.close()
        self._live.append(g)
        return g

    def get(self, kernel: Kernel) -> Guest:
        if kernel.key not in self._guests:
            try:
                self._guests[kernel.key] = self._admit(
                    boot.boot(boot.BootRequest(kernel, accel_mode=self.accel, pausable=True)))
            except KernelFailure as e:
                self._guests[kernel.key] = e
        got = self._guests[kernel.key]
        if isinstance(got, KernelFailure):
            raise got
        self._live.remove(got)
        self._live.append(got)  # used now: the last to go
        return got

    def boot(self, kernel: Kernel, **kwargs: Any) -> Guest:
        """A private guest (special command line or init), closed when MAX_LIVE newer ones
        have booted or at the end of the session."""
        return self._admit(boot.boot(boot.BootRequest(kernel, accel_mode=self.accel,
                                                      pausable=True, **kwargs)))

    def pause(self) -> None:
        """Stop every live guest's CPU until its next use (while this worker builds: an idle
        arm64 guest took 9 % of a core through a 22-minute wait for builds)."""
        for g in self._live:
            g.pause()

    def close(self) -> None:
        """Close every live guest; remembered boot failures stay remembered."""
        for g in self._live:
            g.close()
        self._guests = {k: v for k, v in self._guests.items() if not isinstance(v, Guest)}
        self._live.clear()


@pytest.fixture(scope="session")
def kernels(request: pytest.FixtureRequest) -> Iterator[Kernels]:
    pool = Kernels(request.config)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def primary_arch(request: pytest.FixtureRequest) -> str:
    return primary(request.config)


@pytest.fixture(scope="session")
def kernel(kernel_spec: BuildSpec, kernels: Kernels) -> Kernel:
    """The kernel of this parametrization (one per --arch), built once per machine."""
    return kernels.get(kernel_spec)


@pytest.fixture(scope="session")
def guests(request: pytest.FixtureRequest) -> Iterator[Guests]:
    pool = Guests(request.config.getoption("accel"))
    POOLS.append(pool)
    yield pool
    POOLS.remove(pool)
    pool.close()


@pytest.fixture
def guest(kernel: Kernel, guests: Guests, record_property: Any) -> Guest:
    """The booted guest of `kernel`; one boot serves every test of the kernel in this worker."""
    for name, value in (("arch", kernel.arch), ("lto", kernel.lto),
                        ("compiler", kernel.compiler), ("kernel_release", kernel.release)):
        record_property(name, value)
    g = guests.get(kernel)
    record_property("accel", g.accel)
    record_property("boot_seconds", f"{g.boot_seconds:.2f}")
    record_property("console_log", str(g.log))
    return g
