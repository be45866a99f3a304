"""Kernel builds: tinyconfig + our fragments, out of tree, cached by a key over every input."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness import cache, kconfig, source, toolchain
from harness.arch import get_arch
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

    @property
    def label(self) -> str:
        return f"{self.arch}-{self.lto}"


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
        return f"{self.arch}-{self.lto}"

    def to_json(self, base: Path) -> str:
        def rel(v: object) -> object:
            if isinstance(v, Path):
                return os.path.relpath(v, base) if v.is_relative_to(base) else str(v)
            return v

        return json.dumps({k: rel(v) for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str, base: Path) -> Kernel:
        raw = json.loads(text)
        for k in ("image", "config", "system_map", "modules", "build_dir", "source_tree",
                  "build_log"):
            if raw.get(k) is not None:
                raw[k] = base / raw[k]
        return cls(**raw)


def _previous_steps(kernels: Path, label: str) -> int:
    """Step count of the newest earlier build of the same arch and LTO mode, for a percentage."""
    best, newest = 0, 0.0
    for meta in kernels.glob(f"{label}-*/meta.json"):
        mtime = meta.stat().st_mtime
        if mtime > newest:
            newest, best = mtime, int(json.loads(meta.read_text()).get("steps", 0))
    return best


class _Make:
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
                                    text=True, errors="replace", stdin=subprocess.DEVNULL)
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    logf.write(line)
                    self.tail.append(line.rstrip("\n"))
                    if _KBUILD_STEP.match(line):
                        self.steps += 1
                    now = time.monotonic()
                    if now - last >= 15:
                        last = now
                        self._report(now - started, line.strip())
                rc = proc.wait()
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if rc != 0:
            raise BuildError(f"build {self.label}: make {' '.join(targets)} failed (exit {rc})",
                             log=self.log, tail="\n".join(self.tail))

    def _report(self, elapsed: float, current: str) -> None:
        done = f"{self.steps} steps"
        if self.expected:
            pct = min(99, 100 * self.steps // self.expected)
            done = f"{self.steps}/{self.expected} steps ({pct}%)"
        say(f"building {self.label}: {done}, {duration(elapsed)}: {current[:60]}")


def _jobs() -> int:
    return len(os.sched_getaffinity(0))


def _do_build(tmp: Path, spec: BuildSpec, src: source.KernelSource, tc: toolchain.Toolchain,
              wanted: dict[str, str], key: str, root: Path) -> None:
    arch = get_arch(spec.arch)
    tmp.mkdir()
    out = tmp / "build"
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"build-{spec.label}-{key[:12]}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    argv = ["make", "-C", str(src.tree), f"O={out}", f"ARCH={arch.kernel_arch}", *tc.make_vars,
            "KBUILD_BUILD_USER=ltoboot", "KBUILD_BUILD_HOST=ltoboot"]
    make = _Make(argv, log, spec.label, _previous_steps(root / "kernels", spec.label))
    say(f"building {spec.label} from {src.description} with {tc.clang_version}; log: {log}")
    started = time.monotonic()
    # One make at a time per machine, each with every core: parallel workers never oversubscribe.
    (root / "locks").mkdir(exist_ok=True)
    with cache.locked(root / "locks" / "make.lock",
                      f"building {spec.label}: waiting for another build to finish"):
        make("tinyconfig")
        config = out / ".config"
        config.write_text(kconfig.apply(config.read_text(), wanted))
        make("olddefconfig")
        problems = kconfig.not_stuck(wanted, kconfig.parse(config.read_text()))
        if problems:
            raise BuildError(f"build {spec.label}: Kconfig dropped options we asked for: "
                             + "; ".join(problems), log=log)
        make(jobs=_jobs())
        modroot: Path | None = None
        if wanted.get("MODULES") == "y":
            modroot = tmp / "modroot"
            make("modules_install", f"INSTALL_MOD_PATH={modroot}", "INSTALL_MOD_STRIP=1",
                 jobs=_jobs())
    seconds = time.monotonic() - started
    release = (out / "include/config/kernel.release").read_text().strip()
    kernel = Kernel(
        arch=spec.arch, lto=spec.lto, release=release, image=out / arch.image,
        config=out / ".config", system_map=out / "System.map", modules=modroot, build_dir=out,
        source_tree=src.tree, compiler=tc.clang_version, linker=tc.lld_version,
        llvm_major=tc.major, source=src.description, key=key, build_log=log,
        build_seconds=round(seconds, 1), steps=make.steps,
    )
    (tmp / "meta.json").write_text(kernel.to_json(tmp))
    say(f"built {spec.label} ({release}) in {duration(seconds)}, {make.steps} steps")


def build_kernel(spec: BuildSpec) -> Kernel:
    """The kernel for `spec`, built at most once per machine (a cache hit costs milliseconds)."""
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
    root = cache.cache_root()
    entry = cache.publish(root / "kernels" / f"{spec.label}-{key}",
                          lambda tmp: _do_build(tmp, spec, src, tc, wanted, key, root))
    return Kernel.from_json((entry / "meta.json").read_text(), entry)
