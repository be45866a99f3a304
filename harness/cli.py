"""`ltoboot`: the command line. `ltoboot run` builds, boots and checks, and prints a report."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from harness import (
    bisect,
    cache,
    checks,
    coverage,
    matrix,
    options,
    pipeline,
    proc,
    redaction,
    series,
)
from harness.arch import PREFERRED
from harness.errors import BuildError, InfraError, KernelFailure, LtobootError, UsageError
from harness.kernel import source
from harness.kernel.model import BuildSpec, Kernel, lto_mode
from harness.kernel.obtain import obtain
from harness.kernel.source import DEFAULT_TARBALL
from harness.lava import export as lava_export
from harness.lava import local as lava_local
from harness.lava import server as lava_server
from harness.lava import verdicts
from harness.options import KERNEL_OPTIONS, base_config, kernel_specs, split_arches
from harness.progress import say
from harness.reports import junit, reply
from harness.reports.results import KernelReport, Stage
from harness.reports.tested_by import facts_for_tested_by, render_tested_by
from harness.reports.text import render
from harness.series import Series

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def add_kernel_options(p: argparse.ArgumentParser) -> None:
    for flag, kwargs in KERNEL_OPTIONS:
        p.add_argument(flag, **kwargs)
    p.add_argument("--check", action="append", default=[], metavar="NAME",
                   help=f"run only these checks (repeatable; known: {', '.join(checks.CHECKS)})")


def specs(args: argparse.Namespace) -> list[BuildSpec]:
    return kernel_specs(args.arch, args.lto, args.llvm, args.kernel_src, args.fragment,
                        args.kernel, args.base_config)


def cmd_run(args: argparse.Namespace) -> int:
    names = pipeline.check_names(args.check)
    reports = []
    for rep in pipeline.check_kernels(specs(args), args.accel, names, args.initcalls):
        reports.append(rep)
        print(render(rep), flush=True)
        print(flush=True)
    if args.coverage:
        print(f"series coverage: {coverage.SERIES}")
        for line in coverage.verdicts((r.label, r.kernel.arch, c.name, c.verdict)
                                      for r in reports if r.kernel is not None
                                      for c in r.results):
            print(f"  {line}")
        print()
    return finish(reports, args.junit)


def finish(reports: Sequence[KernelReport], junit_path: str | None) -> int:
    """The last line of a run, its JUnit when asked for, and its exit status."""
    if junit_path:
        junit.write(reports, Path(junit_path))
        print(f"ltoboot: JUnit: {junit_path}")
    ok = all(r.passed for r in reports)
    print(f"ltoboot: {'all passed' if ok else 'FAILED'}: "
          + ", ".join(f"{r.label} {'ok' if r.passed else 'failed'}" for r in reports))
    return EXIT_OK if ok else EXIT_FAILED


def _obtained(args: argparse.Namespace) -> tuple[list[Kernel], list[KernelReport]]:
    """The kernels the options name, built or fetched; reports of those that did not build."""
    kernels, failed = [], []
    for spec in specs(args):
        try:
            kernels.append(obtain(spec))
        except BuildError as e:
            failed.append(KernelReport(label=spec.label).fail(Stage.BUILD, e))
    return kernels, failed


def cmd_lava_export(args: argparse.Namespace) -> int:
    names = pipeline.check_names(args.check)
    lava_export.artifact_base(args.artifact_url)  # before any build
    kernels, failed = _obtained(args)
    for rep in failed:
        print(render(rep) + "\n", flush=True)
    lava_export.export(kernels, Path(args.out), names=names, artifact_url=args.artifact_url)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_lava_run(args: argparse.Namespace) -> int:
    lava_local.require()
    return _lava_jobs(args, lambda jobs: lava_local.run(jobs, parallel=args.parallel))


def cmd_lava_submit(args: argparse.Namespace) -> int:
    options.minutes("--wait", args.wait)
    if args.artifact_url:
        lava_export.artifact_base(args.artifact_url)
        if not args.out:
            raise UsageError("--artifact-url names where --out will be served: give --out DIR "
                             "too, and publish DIR there before the jobs run")
    server = lava_server.Server.connect(args.server, lava_server.token(args.identity))
    say(f"LAVA server {server.url}: version {server.version()}")  # before any build
    return _lava_jobs(args, lambda jobs: lava_server.run(jobs, server, args.wait))


def _lava_jobs(args: argparse.Namespace,
               execute: Callable[[list[lava_export.Job]], dict[lava_export.Job, Path]]) -> int:
    """Export the kernels' jobs, have `execute` run them, judge them: the report, JUnit and
    exit status of `ltoboot run`."""
    names = pipeline.check_names(args.check)
    kernels, reports = _obtained(args)
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(), prefix="lava-export-") as tmp:
        jobs = lava_export.export(kernels, Path(args.out or Path(tmp) / "jobs"), names=names,
                                  artifact_url=getattr(args, "artifact_url", None))
        logs = execute(jobs)
        for k in kernels:
            rep = verdicts.kernel_report(k, [j for j in jobs if j.kernel is k], logs,
                                         names or list(checks.CHECKS))
            reports.append(rep)
            print(render(rep) + "\n", flush=True)
    return finish(reports, args.junit)


def cmd_coverage(args: argparse.Namespace) -> int:
    print(f"{coverage.SERIES}, on Linux 6.1:\n")
    print(coverage.markdown(), end="")
    return EXIT_OK


def _list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise UsageError(f"{what} needs at least one value")
    return list(dict.fromkeys(items))


def cmd_matrix(args: argparse.Namespace) -> int:
    names = pipeline.check_names(args.check)
    ltos = _list(args.lto, "--lto")
    for m in ltos:
        lto_mode(m)
    arches = split_arches(args.arch)
    config = base_config(args.base_config, arches)
    todo = matrix.cells(args.kernel_src or [str(DEFAULT_TARBALL)], _list(args.llvm, "--llvm"),
                        arches, ltos)

    finished: list[matrix.Cell] = []

    def done(cell: matrix.Cell) -> None:
        print("  ".join(matrix.row(cell)), flush=True)
        finished.append(cell)
        if args.json:  # after every cell: a matrix cut short keeps what it measured
            cache.write_atomic(Path(args.json),
                               json.dumps(matrix.as_json(finished), indent=2) + "\n")

    print("  ".join(matrix.HEADER), flush=True)
    cells = matrix.run(todo, args.accel, names, done, config=config)
    print("\n" + matrix.table(cells), flush=True)
    if args.json:
        print(f"ltoboot: matrix as JSON: {args.json}")
    if any(c.status in matrix.KERNEL_FAILED for c in cells):
        return EXIT_FAILED
    return EXIT_USAGE if any(c.status is matrix.CellStatus.ERROR for c in cells) else EXIT_OK


def git_identity(key: str) -> str:
    return proc.run(["git", "config", key], what=f"reading git's {key}", ok=(0, 1)).strip()


def _series_specs(args: argparse.Namespace, work: Path) -> tuple[list[BuildSpec], Series,
                                                                  dict[str, object]]:
    """--series: the series read and applied onto --base of --kernel-src, in the cache; the
    specs build the patched tree."""
    if args.kernel:
        raise UsageError("--series is applied to a source tree and built: drop --kernel")
    if not args.kernel_src:
        raise UsageError("--series needs --kernel-src TREE, the git repository to apply it to")
    source.require_tree(Path(args.kernel_src), "--kernel-src")
    s = series.read(Path(args.series), work)
    n = len(s.patches)
    answered = [m.message_id for m in s.answered if m.message_id]
    say(f"series \"{s.name}\": {n} patch{'' if n == 1 else 'es'}, ordered by {s.ordered_by}"
        + (f"; replying to {', '.join(answered)}" if answered else
           "; no Message-ID to reply to"))
    applied = series.apply(s, Path(args.kernel_src), args.base)
    args.kernel_src = str(applied.tree)
    info = {**series.describe(s), "base": applied.base, "applied": applied.description,
            "base_described": applied.base_described}
    return specs(args), s, info


def _write_reply(path: Path, text: str) -> None:
    try:
        cache.write_atomic(path, text)
    except OSError as e:
        raise UsageError(f"--reply {path}: cannot write it ({e.strerror}): give a writable "
                         "path") from None


def cmd_tested_by(args: argparse.Namespace) -> int:
    name = args.name or git_identity("user.name")
    email = args.email or git_identity("user.email")
    if not name or not email:
        raise UsageError("tested-by needs --name and --email (or git config user.name and "
                         "user.email)")
    reply.check_identity(name, email)
    if args.reply and not args.series:
        raise UsageError("--reply writes the answer to a mailed series: give --series too")
    names = pipeline.check_names(args.check)
    mailed: Series | None = None
    info: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="series-", dir=cache.scratch_root()) as work:
        todo = specs(args)
        if args.series:
            todo, mailed, info = _series_specs(args, Path(work))
    reports = list(pipeline.check_kernels(todo, args.accel, names))
    facts = facts_for_tested_by(reports, name, email)
    message = ""
    if mailed is not None:
        facts["series"] = info
        if facts["passed"]:
            message = reply.reply(mailed, facts, name, email)
            facts["reply"] = message
    if args.format == "json":
        print(json.dumps(facts, indent=2))
    else:
        print(render_tested_by(facts))
        if message:
            how = "git send-email FILE, mutt -H FILE" if mailed and mailed.cover else \
                "one message per patch, in one mbox: git send-email FILE"
            print(f"\n--- the reply (send it as is: {how}) ---\n{message}", end="")
    if message and args.reply:
        _write_reply(Path(args.reply), message)
        print(f"ltoboot: reply written to {args.reply}", file=sys.stderr)
    elif mailed is not None and not facts["passed"]:
        print("ltoboot: not every check passed: no Tested-by, no reply", file=sys.stderr)
    return EXIT_OK if facts["passed"] else EXIT_FAILED


def _bisect_spec(args: argparse.Namespace) -> BuildSpec:
    if args.kernel:
        raise UsageError("bisect builds each commit of --kernel-src: --kernel does not apply")
    arches = split_arches(args.arch)
    if len(arches) != 1:
        raise UsageError("bisect works on one --arch at a time")
    pipeline.check_names(args.check)
    if args.runs < 1:
        raise UsageError("--runs takes a number of boots, 1 or more")
    return BuildSpec(arch=arches[0], lto=args.lto, llvm=args.llvm,
                     kernel_src=str(Path(args.kernel_src or ".").resolve()),
                     fragments=tuple(str(Path(f).resolve()) for f in args.fragment),
                     config=base_config(args.base_config, arches))


def cmd_bisect_step(args: argparse.Namespace) -> int:
    # Only the kernel's verdicts may reach git bisect run: anything else stops the bisect (255)
    # with the error named, so that no commit is ever blamed for a harness or input problem.
    try:
        spec = _bisect_spec(args)
        log_dir = Path(args.log_dir) if args.log_dir else \
            cache.cache_root() / "logs" / "bisect" / "steps"
        return bisect.step(spec, args.accel, args.runs, args.check, log_dir)
    except KeyboardInterrupt:
        print("ltoboot bisect-step: error: interrupted", file=sys.stderr)
    except LtobootError as e:
        print(f"ltoboot bisect-step: error: {str(e).splitlines()[0]}", file=sys.stderr)
    except Exception as e:
        print(f"ltoboot bisect-step: error: {_internal_error(e)}", file=sys.stderr)
    return bisect.ABORT


def cmd_bisect(args: argparse.Namespace) -> int:
    spec = _bisect_spec(args)
    assert spec.kernel_src is not None
    step_argv = ["--arch", spec.arch, "--lto", spec.lto, "--llvm", spec.llvm,
                 "--kernel-src", spec.kernel_src, "--accel", args.accel,
                 "--runs", str(args.runs), "--config", spec.config]
    for f in spec.fragments:
        step_argv += ["--fragment", f]
    for n in args.check:
        step_argv += ["--check", n]
    report = bisect.run(Path(spec.kernel_src), args.good, args.bad, step_argv)
    print(report.render())
    return EXIT_OK if report.first_bad is not None else EXIT_FAILED


def add_bisect_options(p: argparse.ArgumentParser) -> None:
    add_kernel_options(p)
    p.set_defaults(arch=PREFERRED)
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
    run.add_argument("--coverage", action="store_true",
                     help="also print, per patch of the LTO series, the verdicts that cover it")
    run.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")
    run.set_defaults(func=cmd_run)
    cov = sub.add_parser("coverage", help="what covers each patch of the LTO series "
                         "(run-time check, build outputs, build-only) and its broken build")
    cov.set_defaults(func=cmd_coverage)
    tb = sub.add_parser("tested-by", help="boot every arch, run every check, print an "
                        "email-ready Tested-by block (none when anything failed)")
    add_kernel_options(tb)
    tb.add_argument("--name", help="your name (default: git config user.name)")
    tb.add_argument("--email", help="your email (default: git config user.email)")
    tb.add_argument("--format", choices=("text", "json"), default="text")
    tb.add_argument("--series", metavar="FILE",
                    help="a mailed series (mbox, or a directory of git format-patch files, "
                    "cover letter included) to apply onto --kernel-src at --base, then test")
    tb.add_argument("--base", default="HEAD", metavar="REF",
                    help="the commit of --kernel-src to apply --series onto (default: HEAD)")
    tb.add_argument("--reply", metavar="FILE",
                    help="write the Tested-by reply (RFC 5322, for git send-email or mutt -H) "
                    "to FILE when every check passed")
    tb.set_defaults(func=cmd_tested_by)
    st = sub.add_parser("bisect-step", help="a `git bisect run` step for the checked-out "
                        "commit: 0 good, 1 bad, 125 skip (does not build)")
    add_bisect_options(st)
    st.set_defaults(func=cmd_bisect_step)
    mx = sub.add_parser("matrix", help="build, boot and check every combination of kernel "
                        "source, clang, arch and LTO mode; print a table (and JSON)")
    mx.add_argument("--kernel-src", action="append", default=[], metavar="PATH",
                    help="kernel source tree or tarball, repeatable (default: Debian's 6.1)")
    mx.add_argument("--llvm", default="19", metavar="N,N", help="clang versions (default: 19)")
    mx.add_argument("--arch", default=None, help="architectures (default: all)")
    mx.add_argument("--lto", default="thin", metavar="MODE,MODE",
                    help="LTO modes: thin, full, none (default: thin)")
    mx.add_argument("--accel", default="auto", choices=("auto", "kvm", "tcg"))
    mx.add_argument("--check", action="append", default=[], metavar="NAME",
                    help="run only these checks (repeatable)")
    mx.add_argument("--config", default="tinyconfig", dest="base_config",
                    metavar="tinyconfig|defconfig|FILE",
                    help="the base config of every cell's kernel (default: tinyconfig)")
    mx.add_argument("--json", metavar="FILE", help="also write the cells as JSON")
    mx.set_defaults(func=cmd_matrix)
    lava = sub.add_parser("lava", help="the same checks as LAVA jobs: export them, or run "
                          "them here with LAVA's dispatcher")
    lsub = lava.add_subparsers(dest="lava_command", required=True)
    lx = lsub.add_parser("export", help="write each kernel's LAVA jobs (and the files they "
                         "fetch) into a new directory")
    add_kernel_options(lx)
    lx.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory")
    lx.add_argument("--artifact-url", metavar="URL",
                    help="where DIR will be served (http or https); the jobs fetch kernel "
                    "and initramfs from there (default: file:// URLs into DIR, for this "
                    "machine)")
    lx.set_defaults(func=cmd_lava_export)
    lr = lsub.add_parser("run", help="run the LAVA jobs here with lava-run (root), judge "
                         "them with our checks, print the report")
    add_kernel_options(lr)
    lr.add_argument("--parallel", type=int, default=os.cpu_count() or 1, metavar="N",
                    help="jobs at once (default: the number of cores)")
    lr.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")
    lr.add_argument("--out", help=argparse.SUPPRESS)
    lr.set_defaults(func=cmd_lava_run)
    ls = lsub.add_parser("submit", help="submit the LAVA jobs to a LAVA server, wait for "
                         "them, judge them with our checks, print the report")
    add_kernel_options(ls)
    ls.add_argument("--server", required=True, metavar="URL",
                    help="the LAVA server, e.g. https://lava.example.org/")
    ls.add_argument("--identity", default="default", metavar="NAME",
                    help="lavacli identity whose token to use when LAVA_TOKEN is not set "
                    "(~/.config/lavacli.yaml; default: default)")
    ls.add_argument("--artifact-url", metavar="URL",
                    help="where --out will be served (http or https) for the lab to fetch "
                    "kernel and initramfs (default: file:// URLs: only for a worker on this "
                    "machine)")
    ls.add_argument("--out", metavar="DIR",
                    help="write the jobs and their files here, to publish at --artifact-url "
                    "(default: a scratch directory, removed at the end)")
    ls.add_argument("--wait", type=float, default=60.0, metavar="MINUTES",
                    help="how long to wait for the jobs, queue included (default: 60)")
    ls.add_argument("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")
    ls.set_defaults(func=cmd_lava_submit)
    bi = sub.add_parser("bisect", help="bisect a kernel git tree between --good and --bad "
                        "with bisect-step; report the first bad commit")
    add_bisect_options(bi)
    bi.add_argument("--good", required=True, metavar="REV")
    bi.add_argument("--bad", required=True, metavar="REV")
    bi.set_defaults(func=cmd_bisect)
    return p


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C, so every child is ended on the way out


def _internal_error(e: BaseException) -> str:
    """Save the traceback of a harness bug (secrets redacted, readable by its owner alone)
    in the cache's logs; say where it is, in one line."""
    text = redaction.redact("".join(traceback.format_exception(e)))
    crash: Path | None = None
    with contextlib.suppress(OSError, LtobootError):
        logs = cache.cache_root() / "logs"
        logs.mkdir(exist_ok=True)
        crash = logs / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
        cache.write_atomic(crash, text, mode=0o600)
    where = f"traceback in {crash}" if crash else "no traceback saved: the cache is not writable"
    return redaction.redact(f"ltoboot: internal error: {type(e).__name__}: {e} (a bug in "
                          f"ltoboot; {where})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        options.check_outputs(args)  # a typo in an output path costs no build
        return int(args.func(args))
    except (UsageError, InfraError) as e:
        print(redaction.redact(f"ltoboot: error: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except (BuildError, KernelFailure) as e:
        print(redaction.redact(f"ltoboot: failed: {e}"), file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ltoboot: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        print(_internal_error(e), file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        proc.end_all()
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
