"""Kernel builds: tinyconfig + our fragments, out of tree, cached by a key over every input."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import cache, kconfig, source, toolchain
from harness.arch import get_arch
from harness.children import die_with_parent
from harness.errors import BuildError, UsageError
from harness.progress import duration, say

RECIPE = 1  # bump when the build procedure changes what it produces
LTO_NAMES = {"thin": "ThinLTO", "full": "full LTO", "none": "no LTO"}
_KBUILD_STEP = re.compile(r"^  [A-Z][A-Z0-9_]{1,8} +\S")


@dataclass(frozen=True)
class BuildSpec:
    """What the user asked for; everything else is derived."""

    arch: str
    lto: str = "thin"
    llvm: str = "19"
    kernel_src: str | None = None
    fragments: tuple[str, ...] = ()
    prebuilt: str | None = None  # --kernel: a kernel built elsewhere (harness/prebuilt.py)

    @property
    def label(self) -> str:
        if self.prebuilt == SERVED:
            return f"{self.arch}-{self.lto}-fetched"
        return f"{self.arch}-{self.lto}" + ("-prebuilt" if self.prebuilt else "")


# BuildSpec.prebuilt for "our build of this spec, served over HTTP as TuxMake artifacts and
# fetched back" (the pytest plugin's ltoboot_fetched_copy)
SERVED = "served:"


@dataclass(frozen=True)
class Kernel:
    """A kernel ready to boot, wherever it came from. Paths are absolute."""

    arch: str
    lto: str
    release: str
    image: Path
    config: Path
    system_map: Path | None
    modules: Path | None  # INSTALL_MOD_PATH root holding lib/modules/<release>
    build_dir: Path | None  # the O= directory, for M= module builds and rebuilds
    source_tree: Path | None
    compiler: str
    linker: str
    llvm_major: int | None
    source: str
    key: str
    build_log: Path | None = None
    build_seconds: float | None = None
    steps: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        variant = self.extra.get("variant")
        return f"{self.arch}-{self.lto}" + (f"+{variant}" if variant else "") + (
            "-prebuilt" if "prebuilt" in self.extra else "")

    def to_json(self, base: Path) -> str:
        def rel(v: object) -> object:
            # Paths inside the build directory (and its tree, when that is its parent) are
            # stored relative, so a copied build directory describes itself.
            if isinstance(v, Path) and (v.is_relative_to(base) or v == base.parent):
                return os.path.relpath(v, base)
            return str(v) if isinstance(v, Path) else v

        return json.dumps({k: rel(v) for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str, base: Path) -> Kernel:
        raw = json.loads(text)
        for k in ("image", "config", "system_map", "modules", "build_dir", "source_tree",
                  "build_log"):
            if raw.get(k) is not None:
                raw[k] = Path(os.path.normpath(base / raw[k]))
        return cls(**raw)


META = "ltoboot-meta.json"  # in the O= directory, written last
MODROOT = "ltoboot-modroot"  # INSTALL_MOD_PATH, in the O= directory


def _previous_steps(index: Path, label: str) -> int:
    """Step count of the newest earlier build of the same arch and LTO mode, for a percentage."""
    best, newest = 0, 0.0
    for ref in index.glob(f"{label}-*.json"):
        mtime = ref.stat().st_mtime
        if mtime > newest:
            newest, best = mtime, int(json.loads(ref.read_text()).get("steps", 0))
    return best


def entry_dir(src: source.KernelSource, label: str, key: str, root: Path) -> Path:
    """Where a build lives. In a tree the cache owns, O= is a direct subdirectory: kbuild then
    records srctree as "..", so the build directory can be copied next to a patched copy of the
    tree and rebuilt incrementally. A user's tree is never written to: O= is in the cache."""
    if src.owned:
        return src.tree / f".ltoboot-{label}-{key}"
    return root / "kernels" / f"{label}-{key}"


class Make:
    """Runs make steps for one build, all into one log, with periodic progress lines."""

    def __init__(self, argv: list[str], log: Path, label: str, expected_steps: int) -> None:
        self.argv, self.log, self.label = argv, log, label
        self.expected, self.steps = expected_steps, 0
        self.tail: deque[str] = deque(maxlen=40)

    def __call__(self, *targets: str, jobs: int = 1) -> None:
        argv = [*self.argv, f"-j{jobs}", *targets]
        started = last = time.monotonic()
        with self.log.open("a") as logf:
            logf.write(f"$ {' '.join(argv)}\n")
            logf.flush()
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    preexec_fn=die_with_parent(signal.SIGTERM),
                                    text=True, errors="replace", stdin=subprocess.DEVNULL)
            assert proc.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            stdout = proc.stdout

            def pump() -> None:
                for line in stdout:
                    lines.put(line)
                lines.put(None)

            threading.Thread(target=pump, daemon=True).start()
            current = ""
            try:
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
                    # every 15 s, output or not: LTO links print nothing for minutes
                    if now - last >= 15:
                        last = now
                        self._report(now - started, current)
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if rc != 0:
            what = " ".join(targets) or "(all)"
            raise BuildError(f"build {self.label}: make {what} failed (exit {rc})",
                             log=self.log, tail="\n".join(self.tail))

    def _report(self, elapsed: float, current: str) -> None:
        done = f"{self.steps} steps"
        if self.expected:
            pct = min(99, 100 * self.steps // self.expected)
            done = f"{self.steps}/{self.expected} steps ({pct}%)"
        say(f"building {self.label}: {done}, {duration(elapsed)}: {current[:60]}")


def jobs() -> int:
    return len(os.sched_getaffinity(0))


def compile_kernel(out: Path, spec: BuildSpec, src: source.KernelSource,
                   tc: toolchain.Toolchain, wanted: dict[str, str], key: str, log: Path,
                   expected_steps: int = 0) -> Kernel:
    """Configure and build in `out`, incrementally when it already holds a build; the config
    is tinyconfig (first time) + `wanted`, verified. Writes the metadata; returns the kernel."""
    arch = get_arch(spec.arch)
    out.mkdir(exist_ok=True)
    root = cache.cache_root()
    argv = ["make", "-C", str(src.tree), f"O={out}", f"ARCH={arch.kernel_arch}", *tc.make_vars,
            "KBUILD_BUILD_USER=ltoboot", "KBUILD_BUILD_HOST=ltoboot"]
    make = Make(argv, log, spec.label, expected_steps)
    say(f"building {spec.label} from {src.description} with {tc.clang_version}; log: {log}")
    # One make at a time per machine, each with every core: parallel workers never oversubscribe.
    (root / "locks").mkdir(exist_ok=True)
    with cache.locked(root / "locks" / "make.lock",
                      f"building {spec.label}: waiting for another build to finish"):
        started = time.monotonic()  # build time, not time spent waiting for the lock
        config = out / ".config"
        if not config.exists():
            make("tinyconfig")
        config.write_text(kconfig.apply(config.read_text(), wanted))
        make("olddefconfig")
        problems = kconfig.not_stuck(wanted, kconfig.parse(config.read_text()))
        if problems:
            raise BuildError(f"build {spec.label}: Kconfig dropped options we asked for: "
                             + "; ".join(problems), log=log)
        make(jobs=jobs())
        modroot: Path | None = None
        if wanted.get("MODULES") == "y":
            modroot = out / MODROOT
            shutil.rmtree(modroot, ignore_errors=True)
            make("modules_install", f"INSTALL_MOD_PATH={modroot}", "INSTALL_MOD_STRIP=1",
                 jobs=jobs())
    seconds = time.monotonic() - started
    release = (out / "include/config/kernel.release").read_text().strip()
    kernel = Kernel(
        arch=spec.arch, lto=spec.lto, release=release, image=out / arch.image,
        config=out / ".config", system_map=out / "System.map", modules=modroot, build_dir=out,
        source_tree=src.tree, compiler=tc.clang_version, linker=tc.lld_version,
        llvm_major=tc.major, source=src.description, key=key, build_log=log,
        build_seconds=round(seconds, 1), steps=make.steps,
    )
    (out / META).write_text(kernel.to_json(out))
    say(f"built {spec.label} ({release}) in {duration(seconds)}, {make.steps} steps")
    return kernel


def _do_build(out: Path, spec: BuildSpec, src: source.KernelSource, tc: toolchain.Toolchain,
              wanted: dict[str, str], key: str, root: Path) -> None:
    out.mkdir()
    (root / "logs").mkdir(exist_ok=True)
    log = root / "logs" / f"build-{spec.label}-{key[:12]}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    compile_kernel(out, spec, src, tc, wanted, key, log,
                   _previous_steps(root / "index", spec.label))


@dataclass(frozen=True)
class Plan:
    """Everything a build of `spec` depends on, resolved and checked, and its content key."""

    spec: BuildSpec
    src: source.KernelSource
    tc: toolchain.Toolchain
    wanted: dict[str, str]
    key: str


def plan(spec: BuildSpec) -> Plan:
    if spec.lto not in kconfig.LTO_MODES:
        raise UsageError(f"--lto {spec.lto}: use one of {', '.join(kconfig.LTO_MODES)}")
    arch = get_arch(spec.arch)
    extra = [Path(f).expanduser() for f in spec.fragments]
    for f in extra:
        if not f.is_file():
            raise UsageError(f"config fragment {f} does not exist")
    tc = toolchain.detect(spec.llvm)
    toolchain.require(toolchain.BUILD_TOOLS)
    src = source.resolve(spec.kernel_src)
    wanted = kconfig.wanted_options(arch.fragment, spec.lto, extra)
    key = cache.content_key({
        "recipe": RECIPE, "source": src.identity, "config": wanted, "clang": tc.clang_version,
        "lld": tc.lld_version, "arch": arch.name, "lto": spec.lto,
    })
    return Plan(spec, src, tc, wanted, key)


def build_kernel(spec: BuildSpec) -> Kernel:
    """The kernel for `spec`, built at most once per machine (a cache hit costs milliseconds),
    or the prebuilt one it names."""
    if spec.prebuilt is not None:
        from harness import prebuilt  # it builds on this module

        return prebuilt.resolve(spec)
    p = plan(spec)
    root = cache.cache_root()
    entry = cache.publish(entry_dir(p.src, spec.label, p.key, root),
                          lambda tmp: _do_build(tmp, spec, p.src, p.tc, p.wanted, p.key, root))
    kernel = Kernel.from_json((entry / META).read_text(), entry)
    _index(root, kernel, entry)
    return kernel


def _index(root: Path, kernel: Kernel, entry: Path) -> None:
    """A small record per build under <cache>/index/, wherever the build directory lives."""
    ref = root / "index" / f"{kernel.label}-{kernel.key}.json"
    if not ref.exists():
        ref.parent.mkdir(exist_ok=True)
        tmp = ref.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"entry": str(entry), "steps": kernel.steps,
                                   "build_seconds": kernel.build_seconds}))
        os.replace(tmp, ref)
