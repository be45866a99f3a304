"""`ltoboot`: the command line. `ltoboot run` builds, boots and checks, and prints a report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import bisect, boot, cache, checks, initcalls
from harness.build import BuildSpec, Kernel, build_kernel
from harness.errors import BuildError, InfraError, KernelFailure, UsageError
from harness.guest import Guest
from harness.initcall_report import compare_guests
from harness.options import KERNEL_OPTIONS, kernel_specs, split_arches
from harness.report import KernelReport, facts_for_tested_by, render, render_tested_by

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_kernel_options(p: argparse.ArgumentParser) -> None:
    for flag, kwargs in KERNEL_OPTIONS:
        p.add_argument(flag, **kwargs)
    p.add_argument("--check", action="append", default=[], metavar="NAME",
                   help=f"run only these checks (repeatable; known: {', '.join(checks.CHECKS)})")


def check_kernel(spec: BuildSpec, accel: str, names: Sequence[str] | None,
                 initcall_order: bool = False) -> KernelReport:
    """Build, boot and check one kernel; failures end up in the report, not as exceptions."""
    rep = KernelReport(label=spec.label)
    try:
        rep.kernel = build_kernel(spec)
    except BuildError as e:
        rep.error = f"build failed: {e}"
        return rep
    return check_built(rep, spec, accel, names, initcall_order)


def check_built(rep: KernelReport, spec: BuildSpec, accel: str, names: Sequence[str] | None,
                initcall_order: bool = False) -> KernelReport:
    """Boot and check rep.kernel (built, fetched or a variant) and fill in the report."""
    assert rep.kernel is not None
    guest: Guest | None = None
    try:
        guest = boot.boot(rep.kernel, accel_mode=accel)
        rep.accel, rep.accel_reason = guest.accel, guest.accel_reason
        rep.boot_seconds, rep.console_log = guest.boot_seconds, str(guest.log)
        rep.results = checks.run_checks(guest, rep.kernel, names)
        if initcall_order:
            rep.results.append(compare_initcalls(spec, rep.kernel, guest, accel))
    except KernelFailure as e:
        rep.error = f"boot failed: {e}"
    finally:
        if guest is not None:
            guest.close()
    return rep


def compare_initcalls(spec: BuildSpec, kernel: Kernel, guest: Guest, accel: str
                      ) -> checks.CheckResult:
    """The initcall order of `kernel` against a non-LTO build of the same tree and config."""
    name = "initcall_order"
    try:
        ref_kernel = build_kernel(dataclasses.replace(spec, lto="none"))
        ref = boot.boot(ref_kernel, accel_mode=accel)
    except (BuildError, KernelFailure) as e:
        return checks.CheckResult(name, False, f"no non-LTO reference: {e}".splitlines()[0])
    try:
        report = compare_guests((kernel, guest), (ref_kernel, ref))
    finally:
        ref.close()
    c = report.comparison
    evidence = "\n".join([c.details(), initcalls.durations_table(c),
                          f"report: {report.directory}"])
    return checks.CheckResult(name, c.passed, c.summary(), evidence)


def specs(args: argparse.Namespace) -> list[BuildSpec]:
    return kernel_specs(args.arch, args.lto, args.llvm, args.kernel_src, args.fragment,
                        args.kernel)


def cmd_run(args: argparse.Namespace) -> int:
    names = args.check or None
    for n in names or ():
        if n not in checks.CHECKS:
            raise UsageError(f"--check {n}: unknown check; known: {', '.join(checks.CHECKS)}")
    reports = []
    for spec in specs(args):
        rep = check_kernel(spec, args.accel, names, args.initcalls)
        reports.append(rep)
        print(render(rep), flush=True)
        print(flush=True)
    ok = all(r.passed for r in reports)
    print(f"ltoboot: {'all passed' if ok else 'FAILED'}: "
          + ", ".join(f"{r.label} {'ok' if r.passed else 'failed'}" for r in reports))
    return EXIT_OK if ok else EXIT_FAILED


def git_identity(key: str) -> str:
    got = subprocess.run(["git", "config", key], capture_output=True, text=True)
    return got.stdout.strip()


def cmd_tested_by(args: argparse.Namespace) -> int:
    name = args.name or git_identity("user.name")
    email = args.email or git_identity("user.email")
    if not name or not email:
        raise UsageError("tested-by needs --name and --email (or git config user.name and "
                         "user.email)")
    reports = [check_kernel(spec, args.accel, args.check or None) for spec in specs(args)]
    facts = facts_for_tested_by(reports, name, email)
    if args.format == "json":
        print(json.dumps(facts, indent=2))
    else:
        print(render_tested_by(facts))
    return EXIT_OK if facts["passed"] else EXIT_FAILED


def _bisect_spec(args: argparse.Namespace) -> BuildSpec:
    if args.kernel:
        raise UsageError("bisect builds each commit of --kernel-src: --kernel does not apply")
    arches = split_arches(args.arch)
    if len(arches) != 1:
        raise UsageError("bisect works on one --arch at a time")
    for n in args.check:
        if n not in checks.CHECKS:
            raise UsageError(f"--check {n}: unknown check; known: {', '.join(checks.CHECKS)}")
    if args.runs < 1:
        raise UsageError("--runs takes a number of boots, 1 or more")
    return BuildSpec(arch=arches[0], lto=args.lto, llvm=args.llvm,
                     kernel_src=str(Path(args.kernel_src or ".").resolve()),
                     fragments=tuple(str(Path(f).resolve()) for f in args.fragment))


def cmd_bisect_step(args: argparse.Namespace) -> int:
    try:
        spec = _bisect_spec(args)
    except UsageError as e:
        print(f"ltoboot bisect-step: error: {e}", file=sys.stderr)
        return bisect.ABORT
    log_dir = Path(args.log_dir) if args.log_dir else \
        cache.cache_root() / "logs" / "bisect" / "steps"
    return bisect.step(spec, args.accel, args.runs, args.check, log_dir)


def cmd_bisect(args: argparse.Namespace) -> int:
    spec = _bisect_spec(args)
    assert spec.kernel_src is not None
    step_argv = ["--arch", spec.arch, "--lto", spec.lto, "--llvm", spec.llvm,
                 "--kernel-src", spec.kernel_src, "--accel", args.accel,
                 "--runs", str(args.runs)]
    for f in spec.fragments:
        step_argv += ["--fragment", f]
    for n in args.check:
        step_argv += ["--check", n]
    report = bisect.run(Path(spec.kernel_src), args.good, args.bad, step_argv)
    print(report.render())
    return EXIT_OK if report.first_bad is not None else EXIT_FAILED


def add_bisect_options(p: argparse.ArgumentParser) -> None:
    add_kernel_options(p)
    p.set_defaults(arch="x86_64")
    p.add_argument("--runs", type=int, default=1,
                   help="boots per step; bad if any fails (flaky failures)")
    p.add_argument("--log-dir", help=argparse.SUPPRESS)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltoboot", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="build, boot and check LTO kernels; print a report")
    add_kernel_options(run)
    run.add_argument("--initcalls", action="store_true",
                     help="also build a non-LTO kernel per arch and compare initcall order "
                     "and durations with it (one more build per arch)")
    run.set_defaults(func=cmd_run)
    tb = sub.add_parser("tested-by", help="boot every arch, run every check, print an "
                        "email-ready Tested-by block (none when anything failed)")
    add_kernel_options(tb)
    tb.add_argument("--name", help="your name (default: git config user.name)")
    tb.add_argument("--email", help="your email (default: git config user.email)")
    tb.add_argument("--format", choices=("text", "json"), default="text")
    tb.set_defaults(func=cmd_tested_by)
    st = sub.add_parser("bisect-step", help="a `git bisect run` step for the checked-out "
                        "commit: 0 good, 1 bad, 125 skip (does not build)")
    add_bisect_options(st)
    st.set_defaults(func=cmd_bisect_step)
    bi = sub.add_parser("bisect", help="bisect a kernel git tree between --good and --bad "
                        "with bisect-step; report the first bad commit")
    add_bisect_options(bi)
    bi.add_argument("--good", required=True, metavar="REV")
    bi.add_argument("--bad", required=True, metavar="REV")
    bi.set_defaults(func=cmd_bisect)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, InfraError) as e:
        print(f"ltoboot: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ltoboot: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
