"""Kernel builds: tinyconfig + our fragments, out of tree, cached by a key over every input."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness import cache, needs
from harness.arch import get_arch
from harness.errors import BuildError, UsageError
from harness.kernel import kbuild, kconfig, source, toolchain
from harness.kernel.model import MODROOT, BuildSpec, Kernel, lto_mode
from harness.progress import duration, say

RECIPE = 1  # bump when the build procedure changes what it produces


def _previous_steps(index: Path, label: str, version: str, compiler: str) -> int:
    """Step count of the newest earlier build of the same arch, LTO mode, kernel version and
    compiler, for a percentage (0: none known)."""
    best, newest = 0, 0.0
    for ref in index.glob(f"{label}-*.json"):
        record = json.loads(ref.read_text())
        if (record.get("version"), record.get("compiler")) != (version, compiler):
            continue
        mtime = ref.stat().st_mtime
        if mtime > newest:
            newest, best = mtime, int(record.get("steps", 0))
    return best


def entry_dir(src: source.KernelSource, label: str, key: str, root: Path) -> Path:
    """Where a build lives. In a tree the cache owns, O= is a direct subdirectory: kbuild then
    records srctree as "..", so the build directory can be copied next to a patched copy of the
    tree and rebuilt incrementally. A user's tree is never written to: O= is in the cache."""
    if src.owned:
        return src.tree / f".ltoboot-{label}-{key}"
    return root / "kernels" / f"{label}-{key}"


def compile_kernel(out: Path, spec: BuildSpec, src: source.KernelSource,
                   tc: toolchain.Toolchain, wanted: dict[str, str], key: str, log: Path,
                   expected_steps: int = 0) -> Kernel:
    """Configure and build in `out`, incrementally when it already holds a build; the config
    is tinyconfig (first time) + `wanted`, verified. Writes the metadata; returns the kernel."""
    arch = get_arch(spec.arch)
    out.mkdir(exist_ok=True)
    make = kbuild.Kbuild(src.tree, out, arch, tc.llvm, log, spec.label, expected_steps)
    say(f"building {spec.label} from {src.description} with {tc.clang_version}; log: {log}")
    with kbuild.machine_lock(spec.label):
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
        make(jobs=kbuild.jobs())
        modroot: Path | None = None
        if wanted.get("MODULES") == "y":
            modroot = out / MODROOT
            shutil.rmtree(modroot, ignore_errors=True)
            make("modules_install", jobs=kbuild.jobs(),
                 variables=[f"INSTALL_MOD_PATH={modroot}", "INSTALL_MOD_STRIP=1"])
    seconds = time.monotonic() - started
    release = (out / "include/config/kernel.release").read_text().strip()
    kernel = Kernel(
        arch=spec.arch, lto=spec.lto, release=release, image=out / arch.image,
        config=out / ".config", system_map=out / "System.map", modules=modroot, build_dir=out,
        source_tree=src.tree, compiler=tc.clang_version, linker=tc.lld_version,
        llvm_major=tc.major, source=src.description, key=key, build_log=log,
        build_seconds=round(seconds, 1), steps=make.steps,
    )
    kernel.save(out)
    say(f"built {spec.label} ({release}) in {duration(seconds)}, {make.steps} steps")
    return kernel


def _do_build(out: Path, spec: BuildSpec, src: source.KernelSource, tc: toolchain.Toolchain,
              wanted: dict[str, str], key: str, root: Path) -> None:
    out.mkdir()
    (root / "logs").mkdir(exist_ok=True)
    log = root / "logs" / f"build-{spec.label}-{key[:12]}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    compile_kernel(out, spec, src, tc, wanted, key, log,
                   _previous_steps(root / "index", spec.label, src.version, tc.clang_version))


@dataclass(frozen=True)
class Plan:
    """Everything a build of `spec` depends on, resolved and checked, and its content key."""

    spec: BuildSpec
    src: source.KernelSource
    tc: toolchain.Toolchain
    wanted: dict[str, str]
    key: str
    left_out: dict[str, str]  # checks whose options this toolchain cannot give, and why


def _defines_all(wanted: dict[str, str], defined: frozenset[str], spec: BuildSpec,
                 src: source.KernelSource, extra: list[Path]) -> None:
    """Refuse, before anything is built, options the kernel source does not define: Kconfig
    would drop them without a word (checks' options were already left out, with a SKIP)."""
    missing = kconfig.undefined(wanted, defined)
    if not missing:
        return
    where = f"Linux {src.version} ({spec.arch}, {src.description})"
    for f in reversed(extra):
        mine = kconfig.undefined(kconfig.follow_renames(kconfig.parse(f.read_text()), defined),
                                 defined)
        if mine:
            raise UsageError(f"config fragment {f} asks for "
                             + ", ".join(f"CONFIG_{s}" for s in mine)
                             + f", which {where} does not define: remove it from {f}")
    lto = lto_mode(spec.lto)
    if set(missing) & set(lto.request):
        raise UsageError(f"--lto {spec.lto}: {where} has no "
                         + ", ".join(f"CONFIG_{s}" for s in missing if s in lto.request)
                         + " (Clang LTO arrived in Linux 5.12): use --lto none or a newer kernel")
    raise UsageError(f"{where} does not define " + ", ".join(f"CONFIG_{s}" for s in missing)
                     + ", which ltoboot's base fragments need to boot it: give a Linux 6.x tree")


def plan(spec: BuildSpec) -> Plan:
    lto_mode(spec.lto)  # an unknown mode is bad input before anything runs
    arch = get_arch(spec.arch)
    extra = [Path(f).expanduser() for f in spec.fragments]
    for f in extra:
        if not f.is_file():
            raise UsageError(f"config fragment {f} does not exist")
        try:
            f.read_text()
        except UnicodeDecodeError as e:
            raise UsageError(f"config fragment {f} is not text (UTF-8): {e.reason} at byte "
                             f"{e.start}; give a Kconfig fragment") from None
    tc = toolchain.detect(spec.llvm)
    toolchain.require(toolchain.BUILD_TOOLS)
    src = source.resolve(spec.kernel_src)
    defined = kconfig.defined_symbols(src.tree, arch.src_arch, src.identity)
    options, left_out = needs.build_options(tc.major, tc.clang_version, arch=arch.name,
                                            lto=spec.lto, defined=defined, version=src.version)
    wanted = kconfig.follow_renames(
        kconfig.wanted_options(arch.fragment, spec.lto, extra, options), defined)
    _defines_all(wanted, defined, spec, src, extra)
    key = cache.content_key({
        "recipe": RECIPE, "source": src.identity, "config": wanted, "clang": tc.clang_version,
        "lld": tc.lld_version, "arch": arch.name, "lto": spec.lto,
    })
    return Plan(spec, src, tc, wanted, key, left_out)


def build_kernel(spec: BuildSpec) -> Kernel:
    """The kernel for `spec`, built at most once per machine (a cache hit costs milliseconds)."""
    p = plan(spec)
    for check, why in p.left_out.items():
        if needs.scope_gap(needs.CHECKS[check], spec.arch, spec.lto) is None:  # else: obvious
            say(f"{spec.label}: not asking for what check {check} needs: {why} (it will SKIP)")
    root = cache.cache_root()
    entry = cache.publish(entry_dir(p.src, spec.label, p.key, root),
                          lambda tmp: _do_build(tmp, spec, p.src, p.tc, p.wanted, p.key, root))
    kernel = Kernel.load(entry)
    _index(root, kernel, entry)
    return kernel


def _index(root: Path, kernel: Kernel, entry: Path) -> None:
    """A small record per build under <cache>/index/, wherever the build directory lives."""
    ref = root / "index" / f"{kernel.label}-{kernel.key}.json"
    if not ref.exists():
        ref.parent.mkdir(exist_ok=True)
        cache.write_atomic(ref, json.dumps({"entry": str(entry), "steps": kernel.steps,
                                            "build_seconds": kernel.build_seconds,
                                            "version": kernel.release,
                                            "compiler": kernel.compiler}))
