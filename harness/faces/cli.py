"""`ltoboot`: what each command does (its options are declared in harness/faces/cli_args.py).
`ltoboot run` builds, boots and checks, and prints a report."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from harness import checks
from harness.base import cache, outputs, proc, redaction
from harness.base.errors import BuildError, InfraError, KernelFailure, LtobootError, UsageError
from harness.base.progress import say
from harness.faces import cli_args
from harness.kernel import source
from harness.kernel.model import BuildSpec, Kernel
from harness.kernel.obtain import obtain
from harness.reports import documents, kcidb
from harness.reports.results import KernelReport, Stage
from harness.reports.text import render
from harness.runs import coverage, housekeeping, matrix, options, pipeline
from harness.runs.options import kernel_specs, spec_from, split_arches

# What only some commands need (bisect, LAVA and its HTTP client, mail parsing) they import
# themselves: `ltoboot run` and every bisect step start without it.
if TYPE_CHECKING:
    from harness.kernel.patched import Applied
    from harness.mail.series import Series
    from harness.runs.lava.job import Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
_STARTED = datetime.now(UTC)  # when the command started: KCIDB's tests say it


def cmd_run(args: argparse.Namespace) -> int:
    names = pipeline.check_names(args.check)
    reports = []
    for rep in pipeline.check_kernels(kernel_specs(vars(args)), args.accel, names,
                                      args.initcalls):
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
    return finish(reports, args, names)


def write_documents(args: argparse.Namespace, reports: Sequence[KernelReport],
                    names: Sequence[str] | None, *, series: dict[str, object] | None = None,
                    errors: dict[str, str] | None = None,
                    findings: Sequence[dict[str, object]] = ()) -> None:
    """The documents the options ask for (--junit, --kcidb: harness/reports/documents.py),
    each validated where it has a schema and written atomically; their paths on stderr
    (stdout may be --format json)."""
    ctx = documents.Context(names or list(checks.CHECKS), _STARTED,
                            getattr(args, "artifact_url", None), series, errors or {},
                            findings=list(findings))
    for line in documents.write_all(vars(args), reports, ctx):
        print(line, file=sys.stderr)


def finish(reports: Sequence[KernelReport], args: argparse.Namespace,
           names: Sequence[str] | None, errors: dict[str, str] | None = None) -> int:
    """The last line of a run, its documents when asked for, and its exit status."""
    write_documents(args, reports, names, errors=errors)
    ok = all(r.passed for r in reports)
    print(f"ltoboot: {'all passed' if ok else 'FAILED'}: "
          + ", ".join(f"{r.label} {'ok' if r.passed else 'failed'}" for r in reports))
    return EXIT_OK if ok else EXIT_FAILED


def _obtained(args: argparse.Namespace) -> tuple[list[tuple[BuildSpec, Kernel]],
                                                 list[KernelReport]]:
    """The kernels the options name, built or fetched; reports of those that did not build."""
    kernels, failed = [], []
    for spec in kernel_specs(vars(args)):
        try:
            kernels.append((spec, obtain(spec)))
        except BuildError as e:
            failed.append(KernelReport(label=spec.label, spec=spec).fail(Stage.BUILD, e))
    return kernels, failed


def cmd_lava_export(args: argparse.Namespace) -> int:
    from harness.runs.lava import export as lava_export

    names = pipeline.check_names(args.check)
    lava_export.artifact_base(args.artifact_url)  # before any build
    kernels, failed = _obtained(args)
    for rep in failed:
        print(render(rep) + "\n", flush=True)
    lava_export.export([k for _, k in kernels], Path(args.out), names=names,
                       artifact_url=args.artifact_url)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_lava_run(args: argparse.Namespace) -> int:
    from harness.runs.lava import local as lava_local

    lava_local.require()
    return _lava_jobs(args, lambda jobs: lava_local.run(jobs, parallel=args.parallel))


def cmd_lava_submit(args: argparse.Namespace) -> int:
    from harness.runs.lava import export as lava_export
    from harness.runs.lava import server as lava_server

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
               execute: Callable[[list[Job]], dict[Job, Path]]) -> int:
    """Export the kernels' jobs, have `execute` run them, judge them: the report, JUnit and
    exit status of `ltoboot run`."""
    from harness.runs.lava import export as lava_export
    from harness.runs.lava import verdicts

    names = pipeline.check_names(args.check)
    kernels, reports = _obtained(args)
    errors: dict[str, str] = {}  # a kernel LAVA could not judge: ERROR in KCIDB, exit 2
    first: InfraError | None = None
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(), prefix="lava-export-") as tmp:
        jobs = lava_export.export([k for _, k in kernels],
                                  Path(args.out or Path(tmp) / "jobs"), names=names,
                                  artifact_url=getattr(args, "artifact_url", None))
        try:
            logs = execute(jobs)
        except InfraError as e:  # no job could be judged: say so in KCIDB too, then exit 2
            first, logs = e, {}
        for spec, k in kernels:
            try:
                if first is not None:
                    raise first
                rep = verdicts.kernel_report(k, [j for j in jobs if j.kernel is k], logs,
                                             names or list(checks.CHECKS))
            except InfraError as e:
                first = first or e
                errors[k.label] = str(e).splitlines()[0]
                rep = KernelReport(label=k.label, kernel=k)
            rep.spec = spec
            reports.append(rep)
            if k.label not in errors:
                print(render(rep) + "\n", flush=True)
    if first is not None:
        write_documents(args, reports, names, errors=errors)
        raise first
    return finish(reports, args, names)


def cmd_coverage(args: argparse.Namespace) -> int:
    print(f"{coverage.SERIES}, on Linux 6.1:\n")
    print(coverage.markdown(), end="")
    return EXIT_OK


def cmd_matrix(args: argparse.Namespace) -> int:
    names = pipeline.check_names(args.check)
    todo = matrix.plan(vars(args))

    finished: list[matrix.Cell] = []

    def done(cell: matrix.Cell) -> None:
        print("  ".join(matrix.row(cell)), flush=True)
        finished.append(cell)
        if args.json:  # after every cell: a matrix cut short keeps what it measured
            cache.write_atomic(Path(args.json),
                               json.dumps(matrix.as_json(finished), indent=2) + "\n")

    print("  ".join(matrix.HEADER), flush=True)
    reports: list[KernelReport] = []
    cells = matrix.run(todo, args.accel, names, done, reports=reports)
    write_documents(args, reports, names)
    print("\n" + matrix.table(cells), flush=True)
    if args.json:
        print(f"ltoboot: matrix as JSON: {args.json}")
    if any(c.status in matrix.KERNEL_FAILED for c in cells):
        return EXIT_FAILED
    return EXIT_USAGE if any(c.status is matrix.CellStatus.ERROR for c in cells) else EXIT_OK


def git_identity(key: str) -> str:
    return proc.run(["git", "config", key], what=f"reading git's {key}", ok=(0, 1)).strip()


def _series_specs(args: argparse.Namespace, work: Path
                  ) -> tuple[list[BuildSpec], Series, dict[str, object], Applied]:
    """--series: the series fetched (a Message-ID, a URL) or found, read and applied onto
    --base of --kernel-src, in the cache; the specs build the patched tree."""
    from harness.mail import series, series_source

    if args.kernel:
        raise UsageError("--series is applied to a source tree and built: drop --kernel")
    if not args.kernel_src:
        raise UsageError("--series needs --kernel-src TREE, the git repository to apply it to")
    source.require_tree(Path(args.kernel_src), "--kernel-src")
    src = series_source.resolve(args.series, work / "fetch")
    s = series.read(src.path, work, shown=src.shown, origin=src.origin)
    n = len(s.patches)
    answered = [m.message_id for m in s.answered if m.message_id]
    say(f"series \"{s.name}\"" + (f" from {s.origin}" if s.origin else "")
        + f": {n} patch{'' if n == 1 else 'es'}, ordered by {s.ordered_by}"
        + (f"; replying to {', '.join(answered)}" if answered else
           "; no Message-ID to reply to"))
    applied = series.apply(s, Path(args.kernel_src), args.base)
    info = {**series.describe(s), "mbox": str(src.path), "base": applied.base,
            "applied": applied.description, "base_described": applied.base_described}
    return kernel_specs({**vars(args), "kernel_src": str(applied.tree)}), s, info, applied


def _reproducer(args: argparse.Namespace, mailed: Series, base: str
                ) -> Callable[[BuildSpec], str]:
    """The command that tests the series again as this run did, for one arch's spec: the
    series from where it was fetched (the URL, without credentials), else by its Message-ID
    (in <>, as ltoboot takes any; b4 fetches it from lore), else the file as given."""
    given = mailed.origin or mailed.answered[0].message_id or str(args.series)

    def command(spec: BuildSpec) -> str:
        again = dataclasses.replace(spec, kernel_src=str(Path(args.kernel_src).resolve()))
        return redaction.redact(shlex.join(["ltoboot", "tested-by", "--series", given,
                                            "--base", base, *options.spec_argv(again)]))
    return command


def _write_reply(path: Path, text: str) -> None:
    try:
        cache.write_atomic(path, text)
    except OSError as e:
        raise UsageError(f"--reply {path}: cannot write it ({e.strerror}): give a writable "
                         "path") from None


def cmd_tested_by(args: argparse.Namespace) -> int:
    from harness.reports import reply
    from harness.reports.tested_by import facts_for_tested_by, render_findings, render_tested_by
    from harness.runs import culprit

    name = args.name or git_identity("user.name")
    email = args.email or git_identity("user.email")
    if not name or not email:
        raise UsageError("tested-by needs --name and --email (or git config user.name and "
                         "user.email)")
    reply.check_identity(name, email)
    if args.reply and not args.series:
        raise UsageError("--reply writes the answer to a mailed series: give --series too")
    if args.no_bisect and not args.series:
        raise UsageError("--no-bisect is about the patches of a failing series: give --series "
                         "too")
    names = pipeline.check_names(args.check)
    mailed: Series | None = None
    applied: Applied | None = None
    info: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="series-", dir=cache.scratch_root()) as work:
        todo = kernel_specs(vars(args))
        if args.series:
            todo, mailed, info, applied = _series_specs(args, Path(work))
    reports = list(pipeline.check_kernels(todo, args.accel, names))
    facts = facts_for_tested_by(reports, name, email)
    findings: list[dict[str, object]] = []
    if mailed is not None and applied is not None and not facts["passed"] \
            and not args.no_bisect:
        found = culprit.find(mailed, applied, reports, args.accel, names,
                             _reproducer(args, mailed, applied.base))
        findings = [f.as_dict() for f in found]
    write_documents(args, reports, names,
                    series=kcidb.series_facts(mailed) if mailed else None, findings=findings)
    message = ""
    if mailed is not None:
        facts["series"] = info
        if facts["passed"]:
            message = reply.reply(mailed, facts, name, email)
            facts["reply"] = message
        else:
            facts["findings"] = findings
            if any(f["outcome"] == culprit.Outcome.CULPRIT for f in findings):
                message = reply.failure_report(mailed, findings, facts, name, email)
                facts["report"] = message
    if args.format == "json":
        print(json.dumps(facts, indent=2))
    else:
        print(render_tested_by(facts))
        if findings:
            print("\n" + render_findings(findings))
        if message:
            what = "reply" if facts["passed"] else "report to the patch that breaks it"
            how = "git send-email FILE, mutt -H FILE" if message.count(
                "\nFrom ltoboot ") == 0 and not message.startswith("From ltoboot ") else \
                "one message each, in one mbox: git send-email FILE"
            print(f"\n--- the {what} (send it as is: {how}) ---\n{message}", end="")
    if message and args.reply:
        _write_reply(Path(args.reply), message)
        print(f"ltoboot: {'reply' if facts['passed'] else 'report'} written to {args.reply}",
              file=sys.stderr)
    elif mailed is not None and not facts["passed"]:
        why = "the report to the patch that breaks it is above (--reply FILE writes it)" \
            if message else "no report to send: " + (
                "no patch named (see above)" if findings else
                "--no-bisect" if args.no_bisect else "nothing to bisect")
        print(f"ltoboot: not every check passed: no Tested-by; {why}", file=sys.stderr)
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
    return spec_from(vars(args), arches[0])


def cmd_bisect_step(args: argparse.Namespace) -> int:
    from harness.runs import bisect

    # Only the kernel's verdicts may reach git bisect run: anything else stops the bisect (255)
    # with the error named, so that no commit is ever blamed for a harness or input problem.
    try:
        housekeeping.max_size()  # as every command checks it first; a bad one is no verdict
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
    from harness.runs import bisect

    spec = _bisect_spec(args)
    step_options = ["--accel", args.accel, "--runs", str(args.runs)]
    for n in args.check:
        step_options += ["--check", n]
    report = bisect.run(spec, args.good, args.bad, step_options)
    print(report.render())
    return EXIT_OK if report.first_bad is not None else EXIT_FAILED


def cmd_cache(args: argparse.Namespace) -> int:
    print(housekeeping.listing(housekeeping.entries()))
    return EXIT_OK


def cmd_cache_prune(args: argparse.Namespace) -> int:
    lines, all_removed = housekeeping.prune_command(args.max_size, args.older_than)
    print("\n".join(lines))
    return EXIT_OK if all_removed else EXIT_USAGE  # what stayed needs the user: it says how


_NOT_PRUNED_AFTER = ("cache", "cache prune")  # they look at the cache, or prune it, themselves


def _keep_cache_bounded() -> None:
    said = housekeeping.keep_bounded()
    if said:
        print(said, file=sys.stderr)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "tested-by": cmd_tested_by, "bisect": cmd_bisect, "matrix": cmd_matrix,
    "coverage": cmd_coverage, "bisect-step": cmd_bisect_step, "lava export": cmd_lava_export,
    "lava run": cmd_lava_run, "lava submit": cmd_lava_submit, "cache": cmd_cache,
    "cache prune": cmd_cache_prune,
}


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
        cache.shown(crash)
    where = f"traceback in {crash}" if crash else "no traceback saved: the cache is not writable"
    return redaction.redact(f"ltoboot: internal error: {type(e).__name__}: {e} (a bug in "
                          f"ltoboot; {where})")


def main(argv: Sequence[str] | None = None) -> int:
    global _STARTED
    _STARTED = datetime.now(UTC)
    args = cli_args.parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    bad_input = False  # then nothing was added to the cache, and the error is the one line
    try:
        outputs.check(args)  # a typo in an output path costs no build
        if args.command not in (*_NOT_PRUNED_AFTER, "bisect-step"):  # it checks for itself
            housekeeping.max_size()  # nor does a bad $LTOBOOT_CACHE_MAX, found after a build
        return int(COMMANDS[args.command](args))
    except (UsageError, InfraError) as e:
        bad_input = isinstance(e, UsageError)
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
        if args.command not in _NOT_PRUNED_AFTER and not bad_input:
            _keep_cache_bounded()


if __name__ == "__main__":
    sys.exit(main())
