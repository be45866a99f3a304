"""`ltoboot`: the command line. `ltoboot run` builds, boots and checks, and prints a report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness import boot, checks
from harness.arch import ARCH_NAMES, get_arch
from harness.build import BuildSpec, build_kernel
from harness.errors import BuildError, InfraError, KernelFailure, UsageError
from harness.guest import Guest
from harness.report import KernelReport, render

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def split_arches(value: str) -> list[str]:
    names = [a.strip() for a in value.split(",") if a.strip()]
    for a in names:
        get_arch(a)
    if not names:
        raise UsageError("--arch needs at least one architecture")
    return sorted(set(names), key=names.index)


def add_kernel_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default=",".join(ARCH_NAMES),
                   help=f"comma-separated architectures (default: {','.join(ARCH_NAMES)})")
    p.add_argument("--lto", default="thin", choices=("thin", "full", "none"),
                   help="LTO mode to build (default: thin)")
    p.add_argument("--kernel-src", default=None, metavar="PATH",
                   help="kernel source tree or tarball (default: Debian's linux-source-6.1)")
    p.add_argument("--llvm", default="19", metavar="N",
                   help="LLVM version suffix, as in LLVM=-19 (default: 19)")
    p.add_argument("--fragment", action="append", default=[], metavar="FILE",
                   help="extra Kconfig fragment (repeatable)")
    p.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"),
                   help="accelerator; auto uses KVM only where a probe booted a guest")
    p.add_argument("--check", action="append", default=[], metavar="NAME",
                   help=f"run only these checks (repeatable; known: {', '.join(checks.CHECKS)})")


def check_kernel(spec: BuildSpec, accel: str, names: Sequence[str] | None) -> KernelReport:
    """Build, boot and check one kernel; failures end up in the report, not as exceptions."""
    rep = KernelReport(label=spec.label)
    try:
        rep.kernel = build_kernel(spec)
    except BuildError as e:
        rep.error = f"build failed: {e}"
        return rep
    guest: Guest | None = None
    try:
        guest = boot.boot(rep.kernel, accel_mode=accel)
        rep.accel, rep.accel_reason = guest.accel, guest.accel_reason
        rep.boot_seconds, rep.console_log = guest.boot_seconds, str(guest.log)
        rep.results = checks.run_checks(guest, rep.kernel, names)
    except KernelFailure as e:
        rep.error = f"boot failed: {e}"
    finally:
        if guest is not None:
            guest.close()
    return rep


def cmd_run(args: argparse.Namespace) -> int:
    names = args.check or None
    for n in names or ():
        if n not in checks.CHECKS:
            raise UsageError(f"--check {n}: unknown check; known: {', '.join(checks.CHECKS)}")
    reports = []
    for arch in split_arches(args.arch):
        spec = BuildSpec(arch=arch, lto=args.lto, llvm=args.llvm, kernel_src=args.kernel_src,
                         fragments=tuple(args.fragment))
        rep = check_kernel(spec, args.accel, names)
        reports.append(rep)
        print(render(rep), flush=True)
        print(flush=True)
    ok = all(r.passed for r in reports)
    print(f"ltoboot: {'all passed' if ok else 'FAILED'}: "
          + ", ".join(f"{r.label} {'ok' if r.passed else 'failed'}" for r in reports))
    return EXIT_OK if ok else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ltoboot", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="build, boot and check LTO kernels; print a report")
    add_kernel_options(run)
    run.set_defaults(func=cmd_run)
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
