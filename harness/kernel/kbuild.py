"""kbuild: the one place a make command line is built, and the runner that shows its progress.

Kernel builds, variant rebuilds and M= module builds all go through `Kbuild`: one argv shape
(make -C tree O= ARCH= LLVM= -j targets), one log per build, a progress line every 15 s (LTO
links print nothing for minutes), and one make at a time per machine, each with every core.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from harness.base import cache, proc
from harness.base.arch import Arch
from harness.base.errors import BuildError, InfraError
from harness.base.progress import duration, say
from harness.kernel import toolchain

_KBUILD_STEP = re.compile(r"^  [A-Z][A-Z0-9_]{1,8} +\S")
PROGRESS_SECONDS = 15.0


def llvm_vars(llvm: str) -> list[str]:
    """kbuild's toolchain selection: LLVM=-19 for clang-19 and friends, LLVM=1 unsuffixed."""
    return [f"LLVM=-{llvm}"] if llvm else ["LLVM=1"]


def make_argv(tree: Path, out: Path, arch: Arch, llvm: str, targets: Sequence[str] = (), *,
              jobs: int = 1, module_dir: Path | None = None,
              variables: Sequence[str] = ()) -> list[str]:
    """The make command line for `targets` of the tree at `tree`, built in `out`."""
    argv = ["make", "-C", str(tree), f"O={out}", f"ARCH={arch.kernel_arch}", *llvm_vars(llvm),
            "KBUILD_BUILD_USER=ltoboot", "KBUILD_BUILD_HOST=ltoboot", f"-j{jobs}"]
    if module_dir is not None:
        argv.append(f"M={module_dir}")
    return [*argv, *variables, *targets]


CCACHE_ENV = "LTOBOOT_CCACHE"  # 0: build without ccache
CCACHE_MAX = "20G"
_COUNTERS = ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss")


def ccache_env(llvm: str) -> dict[str, str] | None:
    """What make runs with to compile through ccache, None without it ($LTOBOOT_CCACHE=0, or
    no ccache). ccache masquerades as the compiler, first on PATH: the compile commands kbuild
    records stay what they were, so a build directory made with or without ccache rebuilds
    only what changed; the compilers' cache lives in ltoboot's cache, bounded, with base_dir
    there so a copy of a tree (a variant, a series) still hits."""
    if os.environ.get(CCACHE_ENV, "1") == "0":
        return None
    exe = shutil.which("ccache")
    if exe is None:
        return None
    root = cache.cache_root() / "ccache"
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    sfx = f"-{llvm}" if llvm else ""
    for name in (f"clang{sfx}", "clang"):
        link = bin_dir / name
        if not link.is_symlink():
            tmp = bin_dir / cache.unique_name(f".{name}-")
            tmp.symlink_to(exe)
            os.replace(tmp, link)
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "CCACHE_DIR": str(root / "data"),
            "CCACHE_MAXSIZE": CCACHE_MAX, "CCACHE_BASEDIR": str(cache.cache_root()),
            "CCACHE_NOHASHDIR": "1"}


def ccache_counts(env: dict[str, str] | None) -> tuple[int, int] | None:
    """(hits, compiles) so far in the compilers' cache, from `ccache --print-stats`."""
    if env is None:
        return None
    try:
        out = proc.run(["ccache", "--print-stats"], what="reading ccache's counts",
                       env={**os.environ, **env})
    except InfraError:
        return None
    n = {k: int(v) for k, v in (line.split("\t", 1) for line in out.splitlines()
                                if "\t" in line) if k in _COUNTERS and v.strip().isdigit()}
    hits = n.get("direct_cache_hit", 0) + n.get("preprocessed_cache_hit", 0)
    return hits, hits + n.get("cache_miss", 0)


def jobs() -> int:
    return len(os.sched_getaffinity(0))


# called before this process builds or waits for the machine to build: what it keeps running
# meanwhile steps aside (the test suite pauses its idle guests)
BEFORE_BUILD: list[Callable[[], None]] = []


@contextlib.contextmanager
def machine_lock(label: str) -> Iterator[None]:
    """One make at a time per machine: parallel workers never oversubscribe the cores."""
    for step_aside in BEFORE_BUILD:
        step_aside()
    locks = cache.cache_root() / "locks"
    locks.mkdir(exist_ok=True)
    with cache.locked(locks / "make.lock", f"building {label}: waiting for another build"):
        yield


_SIGNALS = {"Killed": "SIGKILL", "Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT",
            "Bus error": "SIGBUS", "Terminated": "SIGTERM"}
# make's words for a recipe that died of a signal, a shell's exit status 128+N for one, and
# clang's driver's for a compiler or linker it started
_DIED = re.compile(r"\*\*\* \[[^\]]*\] (?P<name>" + "|".join(_SIGNALS) + r")\b"
                   r"|\*\*\* \[[^\]]*\] Error (?P<status>1(?:29|3[0-9]|4[0-9]))\b"
                   r"|error: unable to execute command: (?P<exec>" + "|".join(_SIGNALS) + r")"
                   r"|(?:clang|ld\.lld)\S*: error: .*(?:failed due to signal|crashed)")


def died_of_signal(rc: int, tail: Sequence[str]) -> str | None:
    """The signal a build tool died of (make itself, or a compiler, linker or shell it ran),
    as its name; None when the build failed by itself."""
    if rc < 0:
        return signal.Signals(-rc).name
    for line in tail:
        m = _DIED.search(line)
        if m is None:
            continue
        if m.group("name") or m.group("exec"):
            return _SIGNALS[m.group("name") or m.group("exec")]
        if m.group("status"):
            try:
                return signal.Signals(int(m.group("status")) - 128).name
            except ValueError:
                return f"signal {int(m.group('status')) - 128}"
        return "a signal (the compiler or linker crashed)"
    return None


class Kbuild:
    """Runs make steps of one build, all into one log, with periodic progress lines."""

    def __init__(self, tree: Path, out: Path, arch: Arch, llvm: str, log: Path, label: str,
                 expected_steps: int = 0, expected_seconds: float = 0.0) -> None:
        self.tree, self.out, self.arch, self.llvm = tree, out, arch, llvm
        self.log, self.label = log, label
        self.expected, self.steps = expected_steps, 0
        self.expected_seconds = expected_seconds  # the last build of this config took
        self.tail: deque[str] = deque(maxlen=40)
        self.ccache = ccache_env(llvm)
        self.ccache_hits = self.ccache_compiles = 0

    def __call__(self, *targets: str, jobs: int = 1, module_dir: Path | None = None,
                 variables: Sequence[str] = ()) -> None:
        argv = make_argv(self.tree, self.out, self.arch, self.llvm, targets, jobs=jobs,
                         module_dir=module_dir, variables=variables)
        started = last = time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        before = ccache_counts(self.ccache)
        env = toolchain.make_env(self.ccache)
        with self.log.open("a") as logf, proc.running(argv, env=env) as p:
            logf.write(f"$ {shlex.join(argv)}\n")
            logf.flush()
            lines: queue.Queue[str | None] = queue.Queue()
            stdout = p.stdout

            def pump() -> None:
                for line in stdout:
                    lines.put(line)
                lines.put(None)

            threading.Thread(target=pump, daemon=True).start()
            current = ""
            while True:
                try:
                    line = lines.get(timeout=1.0)
                except queue.Empty:
                    line = ""
                if line is None:
                    break
                if line:
                    logf.write(line)
                    self.tail.append(line.rstrip("\n"))
                    if _KBUILD_STEP.match(line):
                        self.steps += 1
                        current = line.strip()
                now = time.monotonic()
                if now - last >= PROGRESS_SECONDS:  # output or not
                    last = now
                    self._report(now - started, current)
            rc = p.wait()
        after = ccache_counts(self.ccache)
        if before is not None and after is not None:
            self.ccache_hits += after[0] - before[0]
            self.ccache_compiles += after[1] - before[1]
        if rc != 0:
            what = " ".join(targets) or "(all)"
            signal_name = died_of_signal(rc, self.tail)
            if signal_name:  # the machine's doing, not the kernel's: no verdict, no skip
                raise InfraError(
                    f"build {self.label}: make {what}: a tool died of {signal_name}; likely out "
                    "of memory (the OOM killer ends LTO links first: free memory, or give the "
                    f"machine more) or killed from outside; build log: {self.log}")
            raise BuildError(f"build {self.label}: make {what} failed (exit {rc})",
                             log=self.log, tail="\n".join(self.tail))

    def _report(self, elapsed: float, current: str) -> None:
        done = f"{self.steps} steps"
        if self.expected:
            pct = min(99, 100 * self.steps // self.expected)
            done = f"{self.steps}/{self.expected} steps ({pct}%)"
            if self.expected_seconds:  # the same config built before: how long it took then
                left, before = self.expected_seconds * (1 - pct / 100), self.expected_seconds
                done += f", about {duration(left)} left (last time {duration(before)})"
        say(f"building {self.label}: {done}, {duration(elapsed)}: {current[:60]}")

    def ccache_said(self) -> str:
        """", 1,212 of 1,309 compiles from ccache" for the build's line ("" without ccache)."""
        if not self.ccache:
            return ""
        return f", {self.ccache_hits:,} of {self.ccache_compiles:,} compiles from ccache"
