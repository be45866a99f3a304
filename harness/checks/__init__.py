"""What we check inside a booted guest. One registry serves `ltoboot run` and pytest alike.

Each check has a pure evaluator over what the guest printed (unit-tested on recorded output)
and a thin function that asks the guest. Checks register in the order of the modules below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from harness.build import Kernel
from harness.errors import KernelFailure, LtobootError, NotApplicable
from harness.guest import Guest


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


def run_checks(guest: Guest, kernel: Kernel, names: Iterable[str] | None = None
               ) -> list[CheckResult]:
    return [run_check(n, guest, kernel) for n in (names or CHECKS)]


# Registration order is report order.
from harness.checks import basic, lto, modules, cfi  # noqa: E402, F401, I001

LTO_GREP = basic.LTO_GREP
lto_config_as = basic.lto_config_as
proc_version = basic.proc_version
