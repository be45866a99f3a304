"""One kernel through the whole pipeline: obtain it, boot it, run its checks, fill its report.

The CLI's run and tested-by and the bisect step all go through here; failures end up in the
report (build failed, boot failed, a check failed), never as exceptions.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

from harness import checks
from harness.base.errors import BuildError, KernelFailure, UsageError
from harness.checks import initcall_order
from harness.checks.initcall_report import compare_guests
from harness.guest import boot
from harness.guest.session import Guest
from harness.kernel.model import BuildSpec, Kernel
from harness.kernel.obtain import obtain
from harness.reports.results import KernelReport, Stage


def check_names(names: Sequence[str]) -> list[str] | None:
    """The checks asked for by name (None: all of them); an unknown name is bad input."""
    for n in names:
        if n not in checks.CHECKS:
            raise UsageError(f"--check {n}: unknown check; known: {', '.join(checks.CHECKS)}")
    return list(names) or None


def check_kernel(spec: BuildSpec, accel: str, names: Sequence[str] | None,
                 initcalls: bool = False) -> KernelReport:
    """Obtain, boot and check one kernel."""
    rep = KernelReport(label=spec.label, spec=spec)
    try:
        rep.kernel = obtain(spec)
    except BuildError as e:
        return rep.fail(Stage.BUILD, e)
    return check_obtained(rep, spec, accel, names, initcalls)


def check_kernels(specs: Sequence[BuildSpec], accel: str, names: Sequence[str] | None,
                  initcalls: bool = False) -> Iterator[KernelReport]:
    """Several kernels checked side by side, their reports in the order of `specs`. Each
    kernel has a thread: its guests are single-threaded QEMUs, so on a machine with a core to
    spare the arches boot and check at once (builds still take turns on the machine lock).
    The threads are daemons: an interrupted run does not wait for them, and the exit handlers
    end their QEMU and make processes."""
    if len(specs) < 2:
        yield from (check_kernel(s, accel, names, initcalls) for s in specs)
        return
    futures: list[Future[KernelReport]] = [Future() for _ in specs]

    def work(future: Future[KernelReport], spec: BuildSpec) -> None:
        try:
            future.set_result(check_kernel(spec, accel, names, initcalls))
        except BaseException as e:  # handed to the main thread, which raises it
            future.set_exception(e)

    for future, spec in zip(futures, specs, strict=True):
        threading.Thread(target=work, args=(future, spec), daemon=True,
                         name=f"ltoboot-{spec.label}").start()
    for future in futures:
        yield future.result()


def check_obtained(rep: KernelReport, spec: BuildSpec, accel: str,
                   names: Sequence[str] | None, initcalls: bool = False, *,
                   console: str | None = None, log_dir: Path | None = None) -> KernelReport:
    """Boot and check rep.kernel (built, fetched, a variant or a bisect step's) and fill in
    the report; `console` and `log_dir` name the console log (a bisect step keeps one per
    run in its own directory)."""
    assert rep.kernel is not None
    guest: Guest | None = None
    try:
        guest = boot.boot(boot.BootRequest(rep.kernel, accel_mode=accel, label=console,
                                           log_dir=log_dir))
        rep.accel, rep.accel_reason = guest.accel, guest.accel_reason
        rep.boot_seconds, rep.console_log = guest.boot_seconds, str(guest.log)
        # the initcall comparison reads this guest's dmesg after the checks
        rep.results = checks.run_checks(guest, rep.kernel, names, last_use=not initcalls)
        if initcalls:
            rep.results.append(compare_initcalls(spec, rep.kernel, guest, accel))
    except KernelFailure as e:
        rep.fail(Stage.BOOT, e)
    finally:
        if guest is not None:
            guest.close()
    return rep


def compare_initcalls(spec: BuildSpec, kernel: Kernel, guest: Guest, accel: str
                      ) -> checks.CheckResult:
    """The initcall order of `kernel` against a non-LTO build of the same tree and config."""
    name = "initcall_order"
    try:
        ref_kernel = obtain(dataclasses.replace(spec, lto="none"))
        ref = boot.boot(boot.BootRequest(ref_kernel, accel_mode=accel))
    except (BuildError, KernelFailure) as e:
        return checks.CheckResult(name, False, f"no non-LTO reference: {e}".splitlines()[0])
    try:
        report = compare_guests((kernel, guest), (ref_kernel, ref))
    finally:
        ref.close()
    c = report.comparison
    evidence = "\n".join([c.details(), initcall_order.durations_table(c),
                          f"report: {report.directory}"])
    return checks.CheckResult(name, c.passed, c.summary(), evidence)
