"""`git bisect run` for kernels: a step that builds, boots and checks, and a driver around it.

A step builds incrementally in a per-tree build directory inside the tree
(`.ltoboot-bisect-<arch>-<lto>`, ignored by git like every dot-file of a kernel tree), so
kbuild and the ThinLTO cache carry over from step to step. Its answer: 0 good, 1 bad (boot
failure or failed check), 125 skip (the commit does not build or configure), and 255 for
misuse, which makes `git bisect run` stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness import cache, checks, proc
from harness.errors import BuildError, InfraError, KernelFailure, LtobootError, UsageError
from harness.guest import boot, modules
from harness.kernel import failures
from harness.kernel.build import Plan, compile_kernel, plan
from harness.kernel.model import MODROOT, BuildSpec, Kernel
from harness.progress import duration, say

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 255


def git(tree: Path, *args: str, check: bool = True) -> str:
    """git's output; a failure is bad input (one line with git's reason), or with check=False
    whatever git printed before failing (often nothing)."""
    return proc.run(["git", "-C", str(tree), *args], what=f"git {args[0]} in {tree}",
                    error=UsageError, ok=(0,) if check else range(256)).strip()


def build_dir(tree: Path, spec: BuildSpec) -> Path:
    return tree / f".ltoboot-bisect-{spec.label}"


SNAPSHOT_FILES = (".config", "System.map", "Module.symvers")


def _snapshot(tmp: Path, kernel: Kernel) -> None:
    """What a step's kernel needs once the per-tree build directory has moved on."""
    assert kernel.build_dir is not None
    tmp.mkdir()
    shutil.copy2(kernel.image, tmp / kernel.image.name)
    for name in SNAPSHOT_FILES:
        shutil.copy2(kernel.build_dir / name, tmp / name)
    if kernel.modules is not None:
        shutil.copytree(kernel.modules, tmp / MODROOT, symlinks=True)
    snap = dataclasses.replace(
        kernel, image=tmp / kernel.image.name, config=tmp / ".config",
        system_map=tmp / "System.map", modules=tmp / MODROOT if kernel.modules else None,
        build_dir=tmp, source_tree=None)
    snap.save(tmp)


def _step_kernel(tree: Path, spec: BuildSpec, p: Plan, key: str, log: Path) -> Kernel:
    """The kernel of the checked-out commit: built incrementally in the per-tree directory,
    once per commit and plan per machine (a bisect run again is boots, not builds)."""
    entry = cache.cache_root() / "bisect" / f"{spec.label}-{key}"
    failures.raise_if_remembered(entry)  # the same commit, config and toolchain fail alike
    if not entry.exists():
        out = build_dir(tree, spec)
        with cache.locked(out.with_name(out.name + ".lock"), f"waiting for {out}"):
            try:
                kernel = compile_kernel(out, spec, p.src, p.tc, p.wanted, key, log,
                                        optional=p.optional, checkout=p.checkout)
            except BuildError as e:
                failures.remember(entry, e)  # not a transient failure (OOM, disk, signal)
                raise
            with contextlib.suppress(LtobootError):  # while the build directory matches
                modules.probe_modules(kernel)
            cache.publish(entry, lambda tmp: _snapshot(tmp, kernel))
    # this step's checkout, also for a step kept from before kernels carried one
    return dataclasses.replace(Kernel.load(entry), checkout=p.checkout)


@dataclass
class StepResult:
    commit: str
    subject: str
    verdict: str  # good, bad, skip
    kind: str = ""  # build, panic, oops, ..., check
    summary: str = ""
    excerpt: str = ""
    logs: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _evaluate(kernel: Kernel, accel: str, runs: int, only: Sequence[str], step: StepResult,
              log_dir: Path) -> None:
    for n in range(runs):
        try:
            guest = boot.boot(boot.BootRequest(kernel, accel_mode=accel,
                                               label=f"console-{n + 1}", log_dir=log_dir))
        except KernelFailure as e:
            step.logs.append(str(e.log))
            # bisecting one check: a kernel that does not boot cannot answer for it
            step.verdict = "skip" if only else "bad"
            step.kind, step.summary, step.excerpt = e.kind, e.summary, e.excerpt
            return
        try:
            step.logs.append(str(guest.log))
            results = checks.run_checks(guest, kernel, only or None, last_use=True)
        finally:
            guest.close()
        failed = [r for r in results if not r.passed]
        if failed:
            step.verdict, step.kind = "bad", "check"
            step.summary = f"run {n + 1}/{runs}: " + "; ".join(f"{r.name}: {r.summary}"
                                                                for r in failed)
            step.excerpt = "\n".join(r.evidence for r in failed)[-3000:]
            return
    step.verdict, step.summary = "good", f"{runs} run(s), all checks passed"


def step(spec: BuildSpec, accel: str, runs: int, only: Sequence[str], log_dir: Path) -> int:
    """One `git bisect run` step on the checked-out commit of spec.kernel_src."""
    tree = Path(spec.kernel_src or ".").resolve()
    commit = git(tree, "rev-parse", "HEAD")
    result = StepResult(commit, git(tree, "log", "-1", "--format=%s"), "skip")
    started = time.monotonic()
    step_dir = log_dir / f"{time.strftime('%H%M%S')}-{commit[:12]}"
    step_dir.mkdir(parents=True, exist_ok=True)
    say(f"bisect step {commit[:12]} ({result.subject}): testing; logs: {step_dir}")
    try:
        p = plan(spec)
        if not p.src.git:
            raise UsageError(f"{tree} is not a git tree: bisect needs one")
        key = cache.content_key({"bisect": commit, "plan": p.key})
        kernel = _step_kernel(tree, spec, p, key, step_dir / "build.log")
        result.logs.append(str(kernel.build_log))
        _evaluate(kernel, accel, runs, only, result, step_dir)
    except BuildError as e:  # any other error is no verdict: the CLI answers ABORT
        result.kind, result.summary = "build", str(e).splitlines()[0]
        result.excerpt, result.logs = e.tail, [str(e.log)]
    result.seconds = round(time.monotonic() - started, 1)
    (step_dir / "result.json").write_text(json.dumps(result.__dict__, indent=2))
    say(f"bisect step {commit[:12]} ({result.subject}): {result.verdict} in "
        f"{duration(result.seconds)}" + (f" ({result.kind}: {result.summary})" if result.kind
                                         else ""))
    return {"good": GOOD, "bad": BAD, "skip": SKIP}[result.verdict]


@dataclass
class BisectReport:
    first_bad: StepResult | None
    candidates: list[str]  # when only skipped commits are left
    steps: list[StepResult]
    skipped: list[str]
    log_dir: Path
    seconds: float

    def render(self) -> str:
        lines = []
        if self.first_bad is not None:
            b = self.first_bad
            lines += [f"first bad commit: {b.commit} {b.subject}",
                      f"failure: {b.kind}: {b.summary}"]
            if b.excerpt:
                lines += ["--- excerpt ---", *b.excerpt.splitlines()[-25:]]
        elif self.candidates:
            lines.append("only skipped commits are left; the first bad commit is one of: "
                         + " ".join(c[:12] for c in self.candidates))
        else:
            lines.append("bisect found no first bad commit")
        lines.append(f"steps: {len(self.steps)} in {self.seconds / 60:.1f} min: "
                     + ", ".join(f"{s.commit[:12]} {s.verdict}" for s in self.steps))
        lines.append("skipped: " + (" ".join(c[:12] for c in self.skipped) or "none"))
        lines.append(f"logs: {self.log_dir}")
        return "\n".join(lines)


def _git_path(tree: Path, name: str) -> Path:
    """A file of the repository's git directory (a worktree's own, where .git is a file)."""
    return (tree / git(tree, "rev-parse", "--git-path", name)).resolve()


_SHOWN = ("ltoboot: bisect step", "ltoboot: building", "ltoboot: built")


def _bisect_run(tree: Path, argv: Sequence[str], log: Path) -> str:
    """`git bisect run argv`, its output kept in `log` and its step lines shown as they come.
    Whatever way this ends, git, the step and the step's make are gone when it returns."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    out: list[str] = []
    with log.open("w") as f, proc.running(["git", "-C", str(tree), "bisect", "run", *argv],
                                          env=env) as p:
        for line in p.stdout:
            f.write(line)
            f.flush()
            out.append(line)
            if line.startswith(_SHOWN):  # the step's progress: what it does, what it found
                say(line.removeprefix("ltoboot: ").rstrip())
        p.wait()
    return "".join(out)


def run(tree: Path, good: str, bad: str, step_argv: Sequence[str]) -> BisectReport:
    """Bisect `tree` between `good` and `bad` with `ltoboot bisect-step <step_argv>`; the tree
    is left as it was found, even on Ctrl-C, SIGTERM or error."""
    tree = tree.resolve()
    if not (tree / ".git").exists():
        raise UsageError(f"{tree} is not a git tree: bisect needs one")
    if git(tree, "status", "--porcelain", "--untracked-files=no"):
        raise UsageError(f"{tree} has uncommitted changes: commit or stash them first")
    if _git_path(tree, "BISECT_LOG").exists() or _git_path(tree, "BISECT_START").exists():
        raise UsageError(f"{tree} is already bisecting: finish it or run git bisect reset")
    for rev in (good, bad):
        if not git(tree, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False):
            raise UsageError(f"{rev!r} is not a commit of {tree}")
    if proc.status(["git", "-C", str(tree), "merge-base", "--is-ancestor", good, bad]) != 0:
        raise UsageError(f"--good {good} is not an ancestor of --bad {bad}: are they swapped?")
    parent = cache.cache_root() / "logs" / "bisect"
    parent.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=parent))
    started = time.monotonic()
    out, bisect_log = "", ""
    try:
        git(tree, "bisect", "start", bad, good)
        argv = [sys.executable, "-m", "harness.cli", "bisect-step", "--log-dir", str(log_dir),
                *step_argv]
        say(f"bisecting {tree} between {good} (good) and {bad} (bad); logs: {log_dir}")
        out = _bisect_run(tree, argv, log_dir / "bisect-run.log")
        bisect_log = git(tree, "bisect", "log", check=False)
    finally:  # git bisect run and its step are gone by now: the tree is ours to reset
        git(tree, "bisect", "reset", check=False)
        _git_path(tree, "BISECT_RUN").unlink(missing_ok=True)
    steps = [StepResult(**json.loads(p.read_text()))
             for p in sorted(log_dir.glob("*/result.json"))]
    skipped = re.findall(r"^git bisect skip ([0-9a-f]{40})", bisect_log, re.M)
    first = re.search(r"^([0-9a-f]{40}) is the first bad commit", out, re.M)
    first_bad = None
    if first:
        sha = first.group(1)
        first_bad = next((s for s in steps if s.commit == sha), None) or StepResult(
            sha, git(tree, "log", "-1", "--format=%s", sha), "bad")
    candidates: list[str] = []
    if not first and "could be any of:" in out:  # only skipped commits were left
        candidates = re.findall(r"^([0-9a-f]{40})$", out.split("could be any of:")[-1], re.M)
    if not first and not candidates:
        why = re.findall(r"^ltoboot bisect-step: error: (.*)$", out, re.M)
        last = out.strip().splitlines()[-1:] or ["no output"]
        raise InfraError(f"git bisect run stopped without a verdict: {(why or last)[-1]} "
                         f"(logs: {log_dir})")
    return BisectReport(first_bad, candidates, steps, skipped, log_dir,
                        time.monotonic() - started)
