"""When a series fails, name the patch, as the 0-day robot does: for each arch whose kernel
fails, the base is checked with the same config (a base that fails the same check on the same
arch is the base's failure: nothing is blamed), then the series' patches are bisected (patches
1..k applied, each step's kernel started from the nearest cached build) down to the first
patch after which the failure appears. A culprit is named only when the step before it passed
the check and it failed the same check, on the same arch; a step whose kernel does not build,
does not boot (for a check's failure) or cannot run the check is a skip, as in `ltoboot
bisect`, and a failure that does not come back at the series' head is said, not bisected.

The steps' trees are the cache's (harness/kernel/patched.py: hard links to the head's tree,
the files a step differs in written anew); their kernels are ordinary cached builds, so a
bisect run again is boots, not builds.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from harness.base.errors import LtobootError
from harness.base.progress import duration, say
from harness.checks import Verdict
from harness.kernel import patched
from harness.kernel.model import BuildSpec
from harness.reports.results import KernelReport, Stage
from harness.reports.text import config_lines
from harness.runs import pipeline

if TYPE_CHECKING:  # the series' mail parsing is for tested-by --series only
    from harness.mail.series import Series

BOOT = "boot"  # what is bisected when the head's kernel does not boot: no check ran


class Outcome(StrEnum):
    CULPRIT = "culprit"  # the first bad patch is named
    BASE = "base"  # the base fails the same way: not this series
    NOT_REPRODUCED = "not-reproduced"  # the head passed when booted again: not bisected
    UNRESOLVED = "unresolved"  # skips leave several patches, or the base cannot answer
    NOT_BISECTED = "not-bisected"  # the head does not build: nothing to bisect on


@dataclass
class PatchRef:
    """A patch of the series as its mail names it."""

    index: int  # 1-based: patches 1..index applied make its step
    number: str  # "3/5" as the subject numbers it
    subject: str  # the title, without [PATCH …]
    author: str  # its From, decoded
    message_id: str  # with <>, "" when the mail has none


@dataclass
class Step:
    """One kernel of the bisect: the base (k = 0), the series' first k patches, the head."""

    k: int
    verdict: str  # good, bad, skip
    failed: list[str] = field(default_factory=list)  # the bisected checks that failed here
    summary: str = ""  # one line: what failed, or why the step cannot answer
    excerpt: str = ""  # the evidence (a check's, or the console's around a panic)
    build_seconds: float | None = None  # None: the kernel was cached
    built_from: str = ""  # "nothing", the donor build's description, or "cached"
    boot_seconds: float | None = None
    console_log: str = ""
    build_log: str = ""


@dataclass
class Finding:
    """What bisecting one arch's failure found."""

    arch: str
    label: str  # the kernel's label, x86_64-thin
    config: list[str]  # how the report names the config (its base, options added)
    checks: list[str]  # what failed at the head and was bisected (BOOT: the kernel did not boot)
    outcome: Outcome
    said: str  # one sentence: what the tester is told
    base: str = ""  # the base as git describe names it
    base_commit: str = ""
    base_failed: list[str] = field(default_factory=list)  # of `checks`, those the base fails
    flaky: list[str] = field(default_factory=list)  # failed at the head, not when booted again
    patch: PatchRef | None = None  # the culprit (CULPRIT)
    candidates: list[PatchRef] = field(default_factory=list)  # UNRESOLVED by skips
    summary: str = ""  # the culprit's failure, one line per check
    excerpt: str = ""  # its evidence
    steps: list[Step] = field(default_factory=list)  # in the order they ran
    seconds: float = 0.0
    reproduce: str = ""  # the command that reproduces it with ltoboot

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def verdict_of(rep: KernelReport, checks: Sequence[str], boot_kind: str = ""
               ) -> tuple[str, list[str], str, str]:
    """(verdict, failed, summary, excerpt) of a step's report for the bisected `checks`: bad
    when one of them fails (or, for BOOT, the kernel does not boot), good when every one
    passed, skip when the kernel cannot answer (it does not build, does not boot while a
    check is bisected, a check cannot run on it; for BOOT, it fails to boot another way than
    the head, `boot_kind`)."""
    if rep.failed_at is Stage.BUILD:
        return "skip", [], rep.error.splitlines()[0], ""
    excerpt = str(getattr(rep.cause, "excerpt", "") or "")
    if rep.failed_at is Stage.BOOT:
        kind = str(getattr(rep.cause, "kind", ""))
        if list(checks) == [BOOT] and boot_kind and kind != boot_kind:
            return "skip", [], f"does not boot another way ({kind}; the head: {boot_kind})", \
                excerpt  # a hang under load is no answer for a panic
        if list(checks) == [BOOT]:
            return "bad", [BOOT], rep.error.splitlines()[0], excerpt
        return "skip", [], f"cannot answer for {', '.join(checks)}: " \
            + rep.error.splitlines()[0], excerpt
    if list(checks) == [BOOT]:
        return "good", [], "booted", ""
    results = {r.name: r for r in rep.results}
    failed = [c for c in checks if c in results and results[c].verdict is Verdict.FAIL]
    if failed:
        return ("bad", failed, "; ".join(f"{c}: {results[c].summary}" for c in failed),
                "\n".join(results[c].evidence for c in failed))
    unanswered = [c for c in checks if c not in results or results[c].verdict is not Verdict.PASS]
    if unanswered:
        why = "; ".join(f"{c}: {results[c].verdict.value} ({results[c].summary})"
                        if c in results else f"{c}: did not run" for c in unanswered)
        return "skip", [], f"cannot answer: {why}", ""
    return "good", [], "passed " + ", ".join(checks), ""


def failing(rep: KernelReport) -> list[str] | None:
    """What a head's report has to bisect: its failed checks, [BOOT] when it did not boot,
    None when there is nothing to bisect (it passed, or it did not build)."""
    if rep.failed_at is Stage.BUILD:
        return None
    if rep.failed_at is Stage.BOOT:
        return [BOOT]
    failed = [r.name for r in rep.results if r.verdict is Verdict.FAIL]
    return failed or None


# A step's kernel: the report of patches 1..k applied (k = 0: the base), built and checked
Tester = Callable[[int], KernelReport]


def _step(k: int, rep: KernelReport, checks: Sequence[str], since: float | None = None,
          boot_kind: str = "") -> Step:
    """A step from its report; `since`: when it started (a kernel whose build log is older
    was cached)."""
    verdict, failed, summary, excerpt = verdict_of(rep, checks, boot_kind)
    kernel = rep.kernel
    log = kernel.build_log if kernel is not None else None
    cached = since is not None and (log is None or not log.exists()
                                     or log.stat().st_mtime < since)
    return Step(k, verdict, failed, summary, excerpt[-4000:],
                build_seconds=None if kernel is None or cached else
                round(kernel.build_seconds or 0.0, 1),
                built_from="" if kernel is None else "cached" if cached else
                str(kernel.extra.get("incremental_from") or "nothing"),
                boot_seconds=None if rep.boot_seconds is None else round(rep.boot_seconds, 2),
                console_log=rep.console_log,
                build_log=str(kernel.build_log) if kernel is not None else "")


def _middle(lo: int, hi: int, skipped: set[int]) -> int | None:
    """The untested step nearest the middle of (lo, hi), None when every one is skipped."""
    left = [k for k in range(lo + 1, hi) if k not in skipped]
    if not left:
        return None
    mid = (lo + hi) / 2
    return min(left, key=lambda k: (abs(k - mid), k))


def bisect(patches: Sequence[PatchRef], head: KernelReport, test: Tester, finding: Finding
           ) -> Finding:
    """Fill `finding` (its arch, label, config and what failed at the head are set) by
    testing the head again, the base, then steps in between. `test(k)` builds and checks
    the series' first k patches."""
    started = time.monotonic()
    n = len(patches)
    checks = finding.checks
    what = ", ".join(checks)

    def run(k: int, wanted: Sequence[str]) -> Step:
        name = "the base" if k == 0 else f"patches 1-{k} of {n}" if k < n else "the head"
        say(f"{finding.label}: bisecting {what}: testing {name}")
        since = time.time()
        rep = test(k)
        reports[k] = rep
        s = _step(k, rep, wanted, since, boot_kind)
        finding.steps.append(s)
        built = "cached" if s.built_from == "cached" else \
            f"built in {duration(s.build_seconds or 0)}" if s.build_seconds is not None else ""
        say(f"{finding.label}: {name}: {s.verdict}" + (f" ({s.summary})" if s.summary else "")
            + (f"; {built}" if built else ""))
        return s

    def done(outcome: Outcome, said: str) -> Finding:
        finding.outcome, finding.said = outcome, said
        finding.seconds = round(time.monotonic() - started, 1)
        return finding

    reports: dict[int, KernelReport] = {}
    # a kernel that does not boot: the steps must fail the same way (a panic, a hang, ...)
    boot_kind = str(getattr(head.cause, "kind", "")) if checks == [BOOT] else ""
    first = _step(n, head, checks)
    if first.verdict != "bad":
        return done(Outcome.NOT_REPRODUCED, f"{what} did not fail at the head: nothing to "
                                             "bisect")
    again = run(n, checks)
    if again.verdict != "bad":
        how = "passed when booted again" if again.verdict == "good" else \
            "could not answer when booted again"
        return done(Outcome.NOT_REPRODUCED,
                    f"{what} failed at the head, then {how} ({again.summary}): a failure "
                    "that does not come back is not bisected")
    if again.failed != checks:  # only what failed twice is bisected
        said = f"{', '.join(c for c in checks if c not in again.failed)} failed at the " \
            "head but not when booted again: not bisected"
        say(f"{finding.label}: {said}")
        finding.flaky = [c for c in checks if c not in again.failed]
        checks = finding.checks = list(again.failed)
        what = ", ".join(checks)
    base = run(0, checks)
    if base.verdict == "skip":
        return done(Outcome.UNRESOLVED, f"the base cannot answer ({base.summary}): nothing "
                                        "to compare the series with")
    finding.base_failed = list(base.failed)
    wanted = [c for c in checks if c not in base.failed]
    if not wanted:
        return done(Outcome.BASE, f"the base already fails {what} on {finding.arch}: "
                                  "not this series")
    if base.failed:  # what the base fails too is the base's; the rest is bisected, when the
        # base passed it (a check the base could not run leaves nothing to compare with)
        verdict, _, summary, _ = verdict_of(reports[0], wanted)
        if verdict != "good":
            return done(Outcome.UNRESOLVED,
                        f"the base fails {', '.join(base.failed)} too and cannot answer for "
                        f"{', '.join(wanted)} ({summary}): nothing to compare the series "
                        "with")
        checks = finding.checks = wanted
        what = ", ".join(wanted)
        say(f"{finding.label}: the base fails {', '.join(base.failed)} too: bisecting {what}")
    lo, hi, bad = 0, n, _step(n, reports[n], checks, boot_kind=boot_kind)
    skipped: set[int] = set()
    while (k := _middle(lo, hi, skipped)) is not None:
        s = run(k, checks)
        if s.verdict == "good":
            lo = k
        elif s.verdict == "bad":
            hi, bad = k, s
        else:
            skipped.add(k)
    if hi - lo > 1:
        finding.candidates = list(patches[lo:hi])
        return done(Outcome.UNRESOLVED,
                    "steps that could not answer leave several patches: the first bad one "
                    "is one of " + ", ".join(p.number for p in finding.candidates))
    culprit = patches[hi - 1]
    finding.patch, finding.summary, finding.excerpt = culprit, bad.summary, bad.excerpt
    failed = ", ".join(bad.failed)
    before = "the base" if hi == 1 else f"patches 1-{hi - 1} applied"
    return done(Outcome.CULPRIT,
                f"patch {culprit.number} \"{culprit.subject}\" breaks {failed} on "
                f"{finding.arch}: {before} passed, with patch {culprit.number} it fails")


def find(series: Series, applied: patched.Applied, reports: Sequence[KernelReport], accel: str,
         names: Sequence[str] | None, reproduce: Callable[[BuildSpec], str]) -> list[Finding]:
    """For each arch whose kernel of the series failed, what bisecting its patches finds
    (arches one after the other: their builds take turns on the machine anyway)."""
    patches = [PatchRef(i, m.number, m.title, m.author, m.message_id)
               for i, m in enumerate(series.patches, start=1)]
    found: list[Finding] = []
    for rep in reports:
        if rep.passed or rep.spec is None:
            continue
        spec = rep.spec
        checks = failing(rep)
        # the config as the report names it; tinyconfig's is ltoboot's own, named so
        config = (config_lines(rep.kernel) if rep.kernel else []) or [
            f"config: {spec.config}, with ltoboot's options (docs/checks.md)"]
        finding = Finding(spec.arch, rep.label, config, checks or [], Outcome.NOT_BISECTED, "",
                          base=applied.base_described, base_commit=applied.base,
                          reproduce=reproduce(spec))
        if checks is None:
            first = rep.error.splitlines()[0] if rep.error else "no check ran"
            finding.said = (f"the series does not build on {spec.arch} ({first}): a kernel "
                            "that does not build is not bisected")
            found.append(finding)
            continue
        # the steps run the bisected checks only (all of them, to see a kernel boot)
        wanted = None if checks == [BOOT] else checks

        def test(k: int, spec: BuildSpec = spec, wanted: list[str] | None = wanted
                 ) -> KernelReport:
            step = dataclasses.replace(spec, kernel_src=str(patched.step_tree(applied, k)))
            return pipeline.check_kernel(step, accel, wanted if wanted is not None else names)

        try:
            found.append(bisect(patches, rep, test, finding))
        except LtobootError as e:  # the run's verdicts stand; the bisect says why it stopped
            finding.outcome = Outcome.UNRESOLVED
            finding.said = f"the bisect stopped: {str(e).splitlines()[0]}"
            found.append(finding)
        say(f"{rep.label}: {finding.said} ({duration(finding.seconds)}, "
            f"{len(finding.steps)} step{'' if len(finding.steps) == 1 else 's'})")
    return found
