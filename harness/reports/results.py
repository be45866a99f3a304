"""What a run found, per kernel: the model every renderer (text, JUnit, Tested-by, the
matrix, LAVA's verdicts) reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from harness.checks import CheckResult
from harness.kernel.model import BuildSpec, Checkout, Kernel, PlannedBuildError


class Stage(StrEnum):
    """Where a kernel failed before any check could run."""

    BUILD = "build failed"
    BOOT = "boot failed"


@dataclass
class KernelReport:
    label: str
    kernel: Kernel | None = None
    accel: str = ""
    accel_reason: str = ""
    boot_seconds: float | None = None
    console_log: str = ""
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""  # build or boot failure: no checks ran
    failed_at: Stage | None = None  # where it failed, when `error` says it did
    spec: BuildSpec | None = None  # what was asked for
    # a kernel that did not build: the key and checkout its build's plan gave it
    planned_key: str = ""
    checkout: Checkout | None = None
    cause: object = None  # what failed it: the BuildError or KernelFailure itself

    def fail(self, stage: Stage, why: object) -> KernelReport:
        """No check could run: the kernel failed at `stage`, for `why` (a build of ours
        that failed says which build it was)."""
        self.failed_at, self.error, self.cause = stage, f"{stage}: {why}", why
        if isinstance(why, PlannedBuildError):
            self.planned_key, self.checkout = why.key, why.checkout
        return self

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.results) and all(r.passed for r in self.results)

    def evidence(self, check: str) -> str:
        return next((r.evidence for r in self.results if r.name == check), "")
