"""The check registry: what a check is, what it returns, and how one is run.

A check declares itself once, with @check on the function that asks the guest: its name, what
it proves, its pure evaluator, the kind of guest it runs on, and (when what it types depends
on what the guest printed) its commands. The function returns an Outcome; the registry names
it. What a check needs from a kernel, and its place in the run and report order, is its row
of harness/base/needs.py, data the kernel stage reads while it plans a build (it may not import
this stage); Check.needs reads that row. harness/checks/__init__.py finds the modules.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from harness.base import needs
from harness.base.errors import InfraError, KernelFailure, LtobootError, NotApplicable
from harness.base.needs import Needs
from harness.guest import boot
from harness.guest.protocol import GuestProtocol
from harness.kernel import kconfig
from harness.kernel.model import Kernel


class Verdict(StrEnum):
    """What a result comes to, the same in every report: the text, JUnit, KCIDB (whose test
    statuses these are) and the Tested-by block. ERROR is no verdict on the kernel: the
    machine or the lab failed (KCIDB's boot test of a run that never reached the guest)."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"  # the kernel lacks what the check needs; does not fail a run
    ERROR = "ERROR"


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    summary: str
    evidence: str = ""  # what the guest printed that the verdict rests on
    skipped: bool = False  # could not run on this kernel (passed is then True)

    @property
    def verdict(self) -> Verdict:
        """The one place a result's outcome is worked out."""
        return Verdict.SKIP if self.skipped else Verdict.PASS if self.passed else Verdict.FAIL


@dataclass(frozen=True)
class Outcome:
    """What a check found, before the registry names it (a SKIP is NotApplicable, raised)."""

    passed: bool
    summary: str
    evidence: str = ""  # what the guest printed that the verdict rests on


CheckFn = Callable[[GuestProtocol, Kernel], CheckResult]
AskFn = Callable[[GuestProtocol, Kernel], Outcome]


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: CheckFn
    # the kind of extra guest it runs on, if any ("crash": the checks that crash the kernel on
    # purpose share one); the registry boots it with boot.companion when a check first asks
    companion: str = ""
    # the commands it types, for a check whose later commands depend on what the guest
    # printed (harness/runs/lava/plan.py records the others by running them)
    plan: Callable[[Kernel], list[str]] | None = None
    # its pure evaluator over what the guest printed, unit-tested on recorded output
    evaluate: Callable[..., object] | None = None

    @property
    def needs(self) -> Needs:
        """What it needs from a kernel: its row of harness/base/needs.py."""
        return needs.CHECKS.get(self.name, Needs())


CHECKS: dict[str, Check] = {}


def check(name: str, description: str, *, evaluate: Callable[..., object] | None = None,
          companion: str = "", plan: Callable[[Kernel], list[str]] | None = None
          ) -> Callable[[AskFn], CheckFn]:
    """Register the decorated function as check `name`. It returns an Outcome; called, what
    it became returns the CheckResult of `name`, as the registry runs it."""
    def register(ask: AskFn) -> CheckFn:
        if name in CHECKS:
            raise ValueError(f"two checks are named {name!r}")

        @functools.wraps(ask)
        def run(guest: GuestProtocol, kernel: Kernel) -> CheckResult:
            found = ask(guest, kernel)
            return CheckResult(name, found.passed, found.summary, found.evidence)

        CHECKS[name] = Check(name, description, run, companion, plan, evaluate)
        return run

    return register


def put_in_order() -> None:
    """CHECKS in run and report order: the order of harness/base/needs.py's table (a check that
    has no row there comes last; tests/unit/test_needs.py fails on it)."""
    rank = {name: i for i, name in enumerate(needs.CHECKS)}
    ordered = sorted(CHECKS.values(), key=lambda c: rank.get(c.name, len(rank)))
    CHECKS.clear()
    CHECKS.update((c.name, c) for c in ordered)


def companion(guest: GuestProtocol, kernel: Kernel, kind: str) -> GuestProtocol:
    """The ready companion guest of this kind; a new one if there is none yet or the last
    crash broke it."""
    other = guest.companions.get(kind)
    if other is None or other.broken is not None:
        if other is not None and other is not guest:  # (a guest serving its own last checks)
            other.close()
        other = boot.companion(guest, kernel, kind)
    return other.ready()


def start_companions(guest: GuestProtocol, kernel: Kernel, names: Iterable[str]) -> None:
    """Start the companions the checks `names` will run on, so that they boot while the main
    guest serves the other checks (the machine has a core to spare for them)."""
    kinds = {CHECKS[n].companion for n in names if CHECKS[n].companion and why_skip(n, kernel)
             is None}
    for kind in sorted(kinds - set(guest.companions)):
        boot.companion(guest, kernel, kind)


_CONFIGS: dict[str, dict[str, str]] = {}


def kernel_config(kernel: Kernel) -> dict[str, str]:
    """The kernel's .config, parsed once per kernel."""
    if kernel.key not in _CONFIGS:
        _CONFIGS[kernel.key] = kconfig.parse(kernel.config.read_text(errors="replace"))
    return _CONFIGS[kernel.key]


def why_skip(name: str, kernel: Kernel) -> str | None:
    """Why check `name` cannot run on `kernel` (what it needs, harness/base/needs.py), or None."""
    wants = needs.CHECKS.get(name)
    if wants is None or wants == Needs():
        return None
    return needs.unmet(name, kernel_config(kernel), kernel.llvm_major, kernel.compiler,
                       kernel.build_dir is not None, kernel.arch, kernel.lto)


def run_check(name: str, guest: GuestProtocol, kernel: Kernel) -> CheckResult:
    """Run one check; a kernel failure during it is that check's failure (and breaks the guest).
    A check the kernel lacks what for is SKIP, with the reason, and is not run."""
    reason = why_skip(name, kernel)
    if reason is not None:
        return CheckResult(name, True, f"skipped: {reason}", skipped=True)
    try:
        return CHECKS[name].run(guest, kernel)
    except KernelFailure as e:
        return CheckResult(name, False, f"{e.kind}: {e.summary}", e.excerpt)
    except NotApplicable as e:
        return CheckResult(name, True, f"skipped: {e}", skipped=True)
    except InfraError:  # the machine's fault (a missing tool or firmware): no verdict at all
        raise
    except LtobootError as e:  # e.g. the probe modules did not build
        return CheckResult(name, False, str(e).splitlines()[0], str(e))
    except Exception as e:  # the guest answered what the check did not expect: its evidence
        return CheckResult(name, False, f"unexpected answer from the guest: "
                           f"{type(e).__name__}: {e}", "".join(traceback.format_exception(e)))


def run_checks(guest: GuestProtocol, kernel: Kernel, names: Iterable[str] | None = None,
               *, last_use: bool = False) -> list[CheckResult]:
    """The checks' results in registry order. With `last_use` (nothing asks `guest` anything
    after them: a run, a bisect step) the checks that may crash a kernel run on `guest` too,
    after all others (dmesg judged before them): one boot serves every check, and a companion
    boots only if one of them broke the guest. Otherwise they run on a companion guest, booted
    at once beside the main one, which other tests go on using."""
    todo = list(names or CHECKS)
    if not last_use:
        start_companions(guest, kernel, todo)
        return [run_check(n, guest, kernel) for n in todo]
    crashing = [n for n in todo if CHECKS[n].companion]
    done = {n: run_check(n, guest, kernel) for n in todo if n not in crashing}
    kinds = {CHECKS[n].companion for n in crashing} - set(guest.companions)
    for kind in kinds:
        guest.companions[kind] = guest
    try:
        done |= {n: run_check(n, guest, kernel) for n in crashing}
    finally:
        for kind in kinds:
            if guest.companions.get(kind) is guest:
                del guest.companions[kind]
    return [done[n] for n in todo]
