"""`git bisect run` for kernels: a step that builds, boots and checks, and a driver around it.

The tester's repository is only read. `ltoboot bisect` works in a clone the cache owns
(<cache>/bisect-trees/<hash of the repository's path>/), with objects of its own (copied,
never hard-linked or borrowed: a `git gc` in the tester's repository cannot take them away),
made once and fetched into on later runs, one bisect at a time.

A step builds incrementally in a per-tree build directory, so kbuild and the ThinLTO cache
carry over from step to step: in a bisect clone, `.ltoboot-bisect-<arch>-<lto>` at its top
(kbuild records srctree as "..", so the first step starts from a copy of the nearest cached
build); in any other tree (a tester's own `git bisect run`), in the cache
(<cache>/bisect-builds/<hash of the tree's path>-<arch>-<lto>/), never in the tree. Its
answer: 0 good, 1 bad (boot failure or failed check), 125 skip (the commit does not build or
configure), and 255 for misuse, which makes `git bisect run` stop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.base import cache, proc
from harness.base.errors import BuildError, InfraError, KernelFailure, LtobootError, UsageError
from harness.base.progress import duration, say
from harness.guest import modules
from harness.kernel import failures, identity, source
from harness.kernel.build import Plan, compile_kernel, find_donor, plan
from harness.kernel.model import MODROOT, BuildSpec, Kernel
from harness.reports.results import KernelReport
from harness.runs import options, pipeline

GOOD, BAD, SKIP, ABORT = 0, 1, 125, 255


def git(tree: Path, *args: str, check: bool = True) -> str:
    """git's output; a failure is bad input (one line with git's reason), or with check=False
    whatever git printed before failing (often nothing). No opportunistic writes (an index
    refresh): in a tester's repository git only reads; what a command must write, it does."""
    return proc.run(["git", "--no-optional-locks", "-C", str(tree), "-c",
                     "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", *args],
                    what=f"git {args[0]} in {tree}", error=UsageError,
                    ok=(0,) if check else range(256)).strip()


def _path_key(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def build_dir(src: source.KernelSource, spec: BuildSpec) -> Path:
    """The per-tree build directory of a step: at the top of a tree the cache owns (a bisect
    clone), else in the cache, the same for every step in the same tree."""
    if src.owned:
        return src.tree / f".ltoboot-bisect-{spec.label}"
    return cache.cache_root() / "bisect-builds" / f"{_path_key(src.tree)}-{spec.label}"


def clone_dir(repo: Path) -> Path:
    """Where `ltoboot bisect` clones `repo` (source.bisect_clone knows it as the cache's)."""
    return cache.cache_root() / source.BISECT_TREES / _path_key(repo)


SNAPSHOT_FILES = (".config", "System.map", "Module.symvers")
# what a step's kernel is made by: 2 since each step configures afresh (before, a step's config
# was the last step's, run through olddefconfig: not always what a build from nothing makes)
STEPS = "s2"


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
    entry = cache.cache_root() / "bisect" / f"{spec.label}-{STEPS}-{key}"
    failures.raise_if_remembered(entry)  # the same commit, config and toolchain fail alike
    if not entry.exists():
        out = build_dir(p.src, spec)
        out.parent.mkdir(parents=True, exist_ok=True)
        # "..ltoboot-*" at a tree's top is the cache's own (nearest.CACHE_OWN); a dot-file in
        # bisect-builds/ is no entry of its own (housekeeping)
        with cache.locked(out.with_name(f".{out.name}.lock"), f"waiting for {out}"):
            if not p.src.owned:
                cache.hold(out)  # in use: no prune removes it while it builds
            # the first step in a clone starts from the nearest cached build; a build
            # directory elsewhere records an absolute srctree that no cached build has
            donor = find_donor(p, out, cache.cache_root()) \
                if p.src.owned and not out.exists() else None
            # the config made afresh, as a build from nothing makes it (a donor's is not
            # carried either): the last step's, of another commit or --config, is not this
            # one's base; kbuild then rebuilds what the options that changed reach
            (out / ".config").unlink(missing_ok=True)
            try:
                kernel = compile_kernel(out, spec, p.src, p.tc, p.wanted, key, log,
                                        optional=p.optional, donor=donor,
                                        checkout=p.checkout)
            except BuildError as e:
                failures.remember(entry, e)  # not a transient failure (OOM, disk, signal)
                raise
            finally:
                cache.size_record(out).unlink(missing_ok=True)  # it grew: measured anew
                if donor is not None:  # the clone's files got the donor's times: tell the
                    # index, or every `git status` of a later step reads every file again
                    git(tree, "update-index", "-q", "--refresh", check=False)
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


def _evaluate(kernel: Kernel, spec: BuildSpec, accel: str, runs: int, only: Sequence[str],
              step: StepResult, log_dir: Path) -> None:
    """`runs` boots of the step's kernel through the pipeline `ltoboot run` uses, each with
    every check (or `only` those); the first that fails decides."""
    for n in range(runs):
        rep = pipeline.check_obtained(KernelReport(spec.label, kernel=kernel, spec=spec), spec,
                                      accel, list(only) or None, console=f"console-{n + 1}",
                                      log_dir=log_dir)
        if isinstance(rep.cause, KernelFailure):
            e = rep.cause
            step.logs.append(str(e.log))
            # bisecting one check: a kernel that does not boot cannot answer for it
            step.verdict = "skip" if only else "bad"
            step.kind, step.summary, step.excerpt = e.kind, e.summary, e.excerpt
            return
        step.logs.append(rep.console_log)
        failed = [r for r in rep.results if not r.passed]
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
        _evaluate(kernel, spec, accel, runs, only, result, step_dir)
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


def _bisecting(tree: Path) -> bool:
    return _git_path(tree, "BISECT_LOG").exists() or _git_path(tree, "BISECT_START").exists()


_SHOWN = ("ltoboot: bisect step", "ltoboot: building", "ltoboot: built")


def _make_clone(tmp: Path, repo: Path) -> None:
    # --no-hardlinks: a hard link would change the tester's pack files (link count, ctime);
    # --dissociate: objects the repository borrows (alternates) are copied too
    proc.run(["git", "clone", "--quiet", "--no-hardlinks", "--dissociate", "--no-checkout",
              str(repo), str(tmp)], what=f"cloning {repo} into the cache for bisect",
             error=UsageError)


@contextlib.contextmanager
def _clone(repo: Path, commits: Sequence[str]) -> Iterator[Path]:
    """The cache's clone of `repo`, holding `commits` and checked out at the last, for this
    process alone while in the block; made the first time, fetched into later (only what it
    does not have yet)."""
    tree = clone_dir(repo)
    tree.parent.mkdir(parents=True, exist_ok=True)
    with cache.locked(tree.with_name(f".{tree.name}.bisect.lock"),
                      f"waiting for another bisect of {repo} (it works in {tree})"):
        if not tree.exists():
            say(f"cloning {repo} into {tree} (once; later bisects fetch what is new)")
        cache.publish(tree, lambda tmp: _make_clone(tmp, repo))
        try:
            # only a git that was killed leaves it, and no one else works in the clone now
            _git_path(tree, "index.lock").unlink(missing_ok=True)
            if _bisecting(tree):  # a bisect of ours that was killed
                say(f"{tree}: resetting the bisect a killed run left")
                git(tree, "bisect", "reset", check=False)
                _git_path(tree, "BISECT_RUN").unlink(missing_ok=True)
            missing = [c for c in commits
                       if proc.status(["git", "-C", str(tree), "cat-file", "-e",
                                       f"{c}^{{commit}}"]) != 0]
            if missing:
                # by hash: a commit need not be on a branch; no automatic gc left running
                git(tree, "-c", "gc.auto=0", "fetch", "--quiet", "--no-tags", str(repo),
                    *missing)
            # times a donor build gave its files are not changes: no file is rewritten for them
            git(tree, "update-index", "-q", "--refresh", check=False)
            git(tree, "checkout", "--quiet", "--force", "--detach", commits[-1])
            yield tree
        finally:
            cache.size_record(tree).unlink(missing_ok=True)  # it grew: measured anew


def _bisect_run(tree: Path, argv: Sequence[str], log: Path) -> str:
    """`git bisect run argv`, its output kept in `log` and its step lines shown as they come.
    Whatever way this ends, git, the step and the step's make are gone when it returns."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}  # harness/runs/ -> top
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


def run(spec: BuildSpec, good: str, bad: str, step_options: Sequence[str]) -> BisectReport:
    """Bisect spec.kernel_src between `good` and `bad` with `ltoboot bisect-step <spec>
    <step_options>`, in the cache's clone of it: the tester's repository is only read. The
    clone is left out of bisect, even on Ctrl-C, SIGTERM or error."""
    assert spec.kernel_src is not None
    repo = Path(spec.kernel_src).resolve()
    if not (repo / ".git").exists():
        raise UsageError(f"{repo} is not a git tree: bisect needs one")
    if identity.tracked_changes(repo):  # asked without refreshing their index
        raise UsageError(f"{repo} has uncommitted changes: commit or stash them first")
    commits = []
    for rev in (good, bad):
        sha = git(repo, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False)
        if not sha:
            raise UsageError(f"{rev!r} is not a commit of {repo}")
        commits.append(sha)
    if proc.status(["git", "--no-optional-locks", "-C", str(repo), "merge-base",
                    "--is-ancestor", *commits]) != 0:
        raise UsageError(f"--good {good} is not an ancestor of --bad {bad}: are they swapped?")
    parent = cache.cache_root() / "logs" / "bisect"
    parent.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=parent))
    started = time.monotonic()
    out, bisect_log = "", ""
    with _clone(repo, commits) as tree:
        try:
            git(tree, "bisect", "start", commits[1], commits[0])
            argv = [sys.executable, "-m", "harness.faces.cli", "bisect-step", "--log-dir",
                    str(log_dir), *options.spec_argv(dataclasses.replace(
                        spec, kernel_src=str(tree))), *step_options]
            say(f"bisecting {repo} between {good} (good) and {bad} (bad) in its clone {tree}; "
                f"logs: {log_dir}")
            out = _bisect_run(tree, argv, log_dir / "bisect-run.log")
            bisect_log = git(tree, "bisect", "log", check=False)
        finally:  # git bisect run and its step are gone by now: the clone is ours to reset
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
            sha, git(repo, "log", "-1", "--format=%s", sha), "bad")
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
