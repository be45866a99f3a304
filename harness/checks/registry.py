"""The check registry: what a check is, what it returns, and how one is run."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.errors import KernelFailure, LtobootError, NotApplicable
from harness.guest.session import Guest
from harness.kernel.model import Kernel


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    evidence: str = ""  # what the guest printed that the verdict rests on
    skipped: bool = False  # could not run on this kernel (passed is then True)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[Guest, Kernel], CheckResult]


CHECKS: dict[str, Check] = {}


def check(name: str, description: str) -> Callable[[Callable[[Guest, Kernel], CheckResult]],
                                                   Callable[[Guest, Kernel], CheckResult]]:
    def register(fn: Callable[[Guest, Kernel], CheckResult]
                 ) -> Callable[[Guest, Kernel], CheckResult]:
        CHECKS[name] = Check(name, description, fn)
        return fn

    return register


def run_check(name: str, guest: Guest, kernel: Kernel) -> CheckResult:
    """Run one check; a kernel failure during it is that check's failure (and breaks the guest)."""
    try:
        return CHECKS[name].run(guest, kernel)
    except KernelFailure as e:
        return CheckResult(name, False, f"{e.kind}: {e.summary}", e.excerpt)
    except NotApplicable as e:
        return CheckResult(name, True, f"skipped: {e}", skipped=True)
    except LtobootError as e:  # e.g. the probe modules did not build
        return CheckResult(name, False, str(e).splitlines()[0], str(e))
    except Exception as e:  # the guest answered what the check did not expect: its evidence
        return CheckResult(name, False, f"unexpected answer from the guest: "
                           f"{type(e).__name__}: {e}", "".join(traceback.format_exception(e)))


def run_checks(guest: Guest, kernel: Kernel, names: Iterable[str] | None = None
               ) -> list[CheckResult]:
    return [run_check(n, guest, kernel) for n in (names or CHECKS)]
