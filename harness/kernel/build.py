"""Kernel builds: tinyconfig + our fragments, out of tree, cached by a key over every input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.base import cache, needs
from harness.base.arch import get_arch
from harness.base.errors import BuildError, UsageError
from harness.base.progress import duration, say
from harness.kernel import copies, freshness, kbuild, kconfig, nearest, source, stamps, toolchain
from harness.kernel.model import (
    BASE_TARGETS,
    META,
    MODROOT,
    BuildSpec,
    Checkout,
    Kernel,
    PlannedBuildError,
    lto_mode,
)

RECIPE = 1  # bump when the build procedure changes what it produces


def _previous_build(index: Path, label: str, version: str, compiler: str,
                    base: str) -> tuple[int, float]:
    """(steps, seconds) of the newest earlier build of the same arch, LTO mode, kernel version,
    compiler and base config, for a percentage and the time left ((0, 0): none known)."""
    best, newest = (0, 0.0), 0.0
    for ref in index.glob(f"{label}-*.json"):
        record = json.loads(ref.read_text())
        if (record.get("version"), record.get("compiler"), record.get("base", "tinyconfig")) \
                != (version, compiler, base) or _incremental(record):
            continue  # a build from another's steps is no measure of one from nothing
        mtime = ref.stat().st_mtime
        if mtime > newest:
            newest = mtime
            best = (int(record.get("steps", 0)), float(record.get("build_seconds") or 0.0))
    return best


def _incremental(record: dict[str, object]) -> bool:
    """Whether an index record's build started from another's: it says so, or (written before
    records said it) its kernel's metadata does."""
    if "incremental" in record:
        return bool(record["incremental"])
    try:
        meta = json.loads((Path(str(record.get("entry"))) / META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "incremental_from" in (meta.get("extra") or {})


def base_config_identity(spec: BuildSpec) -> str:
    """The base config as the cache and the build history name it: tinyconfig, defconfig or
    file:<sha256> of what the file says (not where it is, nor how it was compressed: the
    sha256 of a plain file's bytes, as before compressed files were read)."""
    if spec.config in BASE_TARGETS:
        return spec.config
    return f"file:{hashlib.sha256(_base_bytes(spec)).hexdigest()}"


def _base_bytes(spec: BuildSpec) -> bytes:
    path = Path(spec.config).expanduser()
    if not path.is_file():
        raise UsageError(f"--config {spec.config}: no such file; give tinyconfig, defconfig or "
                         "a kernel .config")
    return kconfig.read_config(path)


def _base_file(spec: BuildSpec) -> str:
    """--config FILE, checked: what it says, a kernel .config (text with CONFIG_ lines),
    decompressed when it is xz, gzip or bzip2."""
    try:
        text = _base_bytes(spec).decode()
    except UnicodeDecodeError:
        text = ""
    if not kconfig.parse(text):
        raise UsageError(f"--config {spec.config} is not a kernel config (no CONFIG_ lines): "
                         "give tinyconfig, defconfig or a .config file")
    return text


def base_cleared(spec: BuildSpec, tree: Path) -> tuple[str, dict[str, str]]:
    """--config FILE as a build of `tree` starts from it: its text without the options that
    name a file the build has not got (kconfig.FILE_OPTIONS) or need a tool this machine has
    not got (toolchain.OPTION_TOOLS: BTF without pahole); they take Kconfig's default. Also
    those options, each with the value the file gave it and why it went."""
    text = _base_file(spec)
    values = kconfig.parse(text)
    files = kconfig.unbuildable(values, tree)
    tools = toolchain.missing_for(values)
    machine = kconfig.machine_files(values)
    cleared = {**{s: f"{v} (names a file this build has not got)" for s, v in files.items()},
               **{s: f"{values[s]} ({tool} is not installed)" for s, tool in tools.items()},
               **{s: f"{v} (builds in files of this machine, which no cache key follows)"
                  for s, v in machine.items()}}
    return kconfig.without(text, cleared), cleared


def base_key_parts(spec: BuildSpec, tree: Path) -> dict[str, object]:
    """What a base config other than tinyconfig adds to a build's key: its identity, and for
    a file the options cleared from it, when there are any (the build then starts from less
    than the file says; a file with none keeps the key it had before clearing existed), and
    the content of the files from outside the tree it names (a module signing key)."""
    parts: dict[str, object] = {"base": base_config_identity(spec)}
    if spec.config in BASE_TARGETS:
        return parts
    text, cleared = base_cleared(spec, tree)
    if cleared:
        parts["cleared"] = sorted(cleared)
    # a key or certificate file from outside the tree that the build reads: its content
    outside = kconfig.outside_files(kconfig.parse(text))
    if outside:
        parts["files"] = {s: cache.file_sha256(p) for s, p in sorted(outside.items())}
    return parts


def entry_dir(src: source.KernelSource, label: str, key: str, root: Path) -> Path:
    """Where a build lives. In a tree the cache owns, O= is a direct subdirectory: kbuild then
    records srctree as "..", so the build directory can be copied next to a patched copy of the
    tree and rebuilt incrementally. A user's tree is never written to: O= is in the cache."""
    if src.owned:
        return src.tree / f".ltoboot-{label}-{key}"
    return root / "kernels" / f"{label}-{key}"


def compile_kernel(out: Path, spec: BuildSpec, src: source.KernelSource,
                   tc: toolchain.Toolchain, wanted: dict[str, str], key: str, log: Path,
                   expected: tuple[int, float] = (0, 0.0),
                   optional: frozenset[str] = frozenset(),
                   donor: nearest.Donor | None = None, *, checkout: Checkout) -> Kernel:
    """Configure and build in `out`, incrementally when it already holds a build; the config
    is the base (--config: tinyconfig, defconfig or a file; first time only) + `wanted`,
    verified. On a base other than tinyconfig, `optional` options (what checks need) may fail
    to stick: those checks SKIP. With a `donor` (`out` not there yet), the build starts from
    a copy of the donor's. Writes the metadata (with `checkout`, where the source came from,
    as the plan found it); returns the kernel."""
    arch = get_arch(spec.arch)
    make = kbuild.Kbuild(src.tree, out, arch, tc.llvm, log, spec.label,
                         *(expected if donor is None else (0, 0.0)))
    say(f"building {spec.label} from {src.description} with {tc.clang_version}"
        + ("" if spec.config == "tinyconfig" else f" on --config {spec.config}")
        + f"; log: {log}")
    with kbuild.machine_lock(spec.label):
        started = time.monotonic()  # build time, not time spent waiting for the lock
        start = _start(out, spec, src, donor)
        extra, modroot = build_in(out, make, spec.label, start,
                                  lambda: configure(out, spec, make, wanted, optional, log),
                                  modules=wanted.get("MODULES") == "y")
    seconds = time.monotonic() - started
    release = (out / "include/config/kernel.release").read_text().strip()
    if make.ccache:  # how many compiles the compilers' cache served: bench and the note
        extra = {**extra, "ccache": f"{make.ccache_hits}/{make.ccache_compiles}"}
    kernel = Kernel(
        arch=spec.arch, lto=spec.lto, release=release, image=out / arch.image,
        config=out / ".config", system_map=out / "System.map", modules=modroot, build_dir=out,
        source_tree=src.tree, compiler=tc.clang_version, linker=tc.lld_version,
        llvm_major=tc.major, source=src.description, key=key, build_log=log,
        build_seconds=round(seconds, 1), steps=make.steps, extra=extra, checkout=checkout,
    )
    kernel.save(out)
    say(f"built {spec.label} ({release}) in {duration(seconds)}, {make.steps} steps"
        + make.ccache_said())
    return kernel


def build_in(out: Path, make: kbuild.Kbuild, label: str, start: Start,
             configure_step: Callable[[], dict[str, str]], modules: bool
             ) -> tuple[dict[str, str], Path | None]:
    """The build sequence of every kernel (a plan's, a broken variant's, a bisect step's), run
    under the machine lock in `out` as `start` left it: configure, make, and for a build that
    started from another one the freshness check, which sends it back to a build from
    nothing, saying why; then the modules. Returns what the configuring and the start said,
    and where the modules are installed."""
    extra = {**configure_step(), **start.said}
    made_from = time.time_ns()  # what depends on a changed file must be made from here on
    make(jobs=kbuild.jobs())
    if start.incremental:
        stale = freshness.stale(out, start.changed, max(start.stamp_ns, made_from))
        if stale:  # a change make did not see: the build from nothing is the answer
            more = f" and {len(stale) - 1} more" if len(stale) > 1 else ""
            say(f"{label}: the build that started from another one missed a change "
                f"({stale[0]}{more}); building from nothing")
            shutil.rmtree(out)
            out.mkdir()
            extra = {**configure_step(), "incremental_missed": str(stale[0])}
            make(jobs=kbuild.jobs())
    modroot: Path | None = None
    if modules:
        modroot = out / MODROOT
        shutil.rmtree(modroot, ignore_errors=True)
        make("modules_install", jobs=kbuild.jobs(),
             variables=[f"INSTALL_MOD_PATH={modroot}", "INSTALL_MOD_STRIP=1"])
    return extra, modroot


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Start:
    """How a build directory was made ready: from a donor's build or not, and then which
    source files make must see as new and the time they were given (freshness checks it)."""

    said: dict[str, str]
    incremental: bool = False
    changed: frozenset[str] = frozenset()
    stamp_ns: int = 0


def _start(out: Path, spec: BuildSpec, src: source.KernelSource,
           donor: nearest.Donor | None) -> Start:
    """`out` made ready to build in: a copy of the donor's build when there is one that
    matches (the kernel's metadata then says which), else empty or as it was."""
    if donor is not None:
        try:
            differ, when = nearest.start_from(donor, out, src.tree)
        except nearest.Unrelated as e:
            say(f"{spec.label}: not starting from the build of {donor.description} ({e}); "
                "building from nothing")
        else:
            changed = donor.changed or frozenset()
            copy = copies.Copy.of(src.tree)
            if copy is not None and not donor.align and copy.base == donor.tree:
                changed, when, differ = copy.changed, copy.stamp_ns, len(copy.changed)
                if stamps.newest_ns(donor.build_dir) >= when:  # built after the copy was
                    # made: what differs is made newer than it, or make would not see it
                    when = stamps.stamp_after(donor.build_dir)
                    for rel in sorted(changed):
                        stamps.stamp(src.tree, rel, when)
            say(f"{spec.label}: starting from the build of {donor.description}: "
                f"{_count(differ, 'file')} and {_count(donor.options, 'option')} differ")
            return Start({"incremental_from": donor.description}, True, changed, when)
    out.mkdir(exist_ok=True)
    return Start({})


def tinyconfig_fragment(spec: BuildSpec) -> str:
    """Our fragment for the arch's tinyconfig base, "" on another base or where there is none."""
    return get_arch(spec.arch).tinyconfig_fragment if spec.config == "tinyconfig" else ""


def preferences(spec: BuildSpec) -> frozenset[str]:
    """The options of that fragment: preferences (x86_64's image compressor), asked for like
    the others but not verified, nor required of the source. A tester's fragment that picks
    another option of the same Kconfig choice overrules them: theirs comes last, and Kconfig
    keeps the last of a choice. An option a tester's fragment sets is theirs, and verified."""
    name = tinyconfig_fragment(spec)
    if not name:
        return frozenset()
    theirs = kconfig.merge(Path(f).expanduser().read_text() for f in spec.fragments)
    return frozenset(kconfig.parse((kconfig.CONFIG_DIR / name).read_text())) - set(theirs)


def configure(out: Path, spec: BuildSpec, make: kbuild.Kbuild, wanted: dict[str, str],
              optional: frozenset[str], log: Path) -> dict[str, str]:
    """out/.config: the base (first time only) + `wanted`, verified. What did not stick is a
    BuildError, except, on a base other than tinyconfig, `optional` options (what only checks
    need): those are returned as not added (their checks SKIP), with what was added, and for
    a base file what was cleared from it and what of it Kconfig did not keep."""
    config = out / ".config"
    base_text, cleared = ("", {}) if spec.config in BASE_TARGETS else \
        base_cleared(spec, make.tree)
    if not config.exists():
        if spec.config in BASE_TARGETS:
            make(spec.config)
        else:
            config.write_bytes(base_text.encode())
            make("olddefconfig")
    before = kconfig.parse(config.read_text())
    config.write_text(kconfig.apply(config.read_text(), wanted))
    make("olddefconfig")
    after = kconfig.parse(config.read_text())
    dropped: set[str] = set()
    if spec.config != "tinyconfig":
        dropped = {s for s in wanted if s in optional and after.get(s, "n") != wanted[s]}
    verified = {s: v for s, v in wanted.items() if s not in dropped | preferences(spec)}
    problems = kconfig.not_stuck(verified, after)
    if problems:
        raise BuildError(f"build {spec.label}: Kconfig dropped options we asked for: "
                         + "; ".join(problems), log=log)
    toolchain.require_for(after)  # what Kconfig turned on that needs a tool: before the compile
    if spec.config == "tinyconfig":
        return {}
    said = added_to_base(spec.config, before, wanted, after, dropped)
    if spec.config in BASE_TARGETS:
        return said
    ours = {*wanted, *lto_mode(spec.lto).expect}  # the LTO mode's choice turns LTO_NONE off
    return {**said, **changed_in_base(kconfig.parse(base_text), cleared, after, ours)}


def find_donor(p: Plan, out: Path, root: Path) -> nearest.Donor | None:
    """The nearest cached build for a build of `p` in `out` (not there yet) to start from."""
    whole = None
    if p.spec.config not in BASE_TARGETS:
        whole = {**kconfig.parse(base_cleared(p.spec, p.src.tree)[0]), **p.wanted}
    return nearest.find(root / "index", nearest.Wanted(
        p.spec.label, p.kin, p.src.identity, p.src.tree, p.wanted, out.parent, p.near, whole,
        None if p.src.files is None else frozenset(p.src.files)))


def _do_build(out: Path, p: Plan, root: Path) -> None:
    spec, src = p.spec, p.src
    donor = find_donor(p, out, root)
    if donor is None:
        out.mkdir()
    (root / "logs").mkdir(exist_ok=True)
    log = root / "logs" / f"build-{spec.label}-{p.key[:12]}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    expected = _previous_build(root / "index", spec.label, src.version, p.tc.clang_version,
                               base_config_identity(spec))
    compile_kernel(out, spec, src, p.tc, p.wanted, p.key, log, expected, p.optional, donor,
                   checkout=p.checkout)


def added_to_base(base: str, before: dict[str, str], wanted: dict[str, str],
                  after: dict[str, str], dropped: set[str]) -> dict[str, str]:
    """What the build put on top of a tester's base config, for the report: the options it
    changed and those of the checks' it could not add (those checks SKIP)."""
    added = [f"CONFIG_{s}={v}" for s, v in wanted.items()
             if before.get(s, "n") != v and s not in dropped]
    return {"config_base": base if base in BASE_TARGETS else Path(base).name,
            "config_added": " ".join(added),
            "config_not_added": " ".join(f"CONFIG_{s}={wanted[s]} (got: {after.get(s, 'n')})"
                                         for s in sorted(dropped))}


def changed_in_base(base: dict[str, str], cleared: dict[str, str], after: dict[str, str],
                    ours: set[str]) -> dict[str, str]:
    """What became of a base file beyond what the build added, for the report: the options
    ltoboot cleared (base_cleared: each with why), and what else the base set that Kconfig did
    not keep when it re-evaluated it for clang and this machine (kconfig.lost), leaving out
    what exists only with an option that was cleared (kconfig.CLEARED_WITH)."""
    gone_with = {s for s in base for c in cleared
                 if s.startswith(kconfig.CLEARED_WITH.get(c, ("\0",)))}
    lost = kconfig.lost(base, after, ours | gone_with)
    return {"config_cleared": "; ".join(f"CONFIG_{s}={v}" for s, v in cleared.items()),
            "config_dropped": " ".join(f"CONFIG_{s}" for s in lost)}


@dataclass(frozen=True)
class Plan:
    """Everything a build of `spec` depends on, resolved and checked, and its content key."""

    spec: BuildSpec
    src: source.KernelSource
    tc: toolchain.Toolchain
    wanted: dict[str, str]
    key: str
    left_out: dict[str, str]  # checks whose options this toolchain cannot give, and why
    optional: frozenset[str]  # what only the checks need (may fail to stick on --config)
    kin: str  # the key without source and config: the builds this one may start from
    near: str  # the kin key without the base config: those it may start from by their config
    checkout: Checkout  # where the source came from (the tester's tree, not the cache's copy)


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
    tiny = tinyconfig_fragment(spec)
    wanted = kconfig.follow_renames(
        kconfig.wanted_options(arch.fragment, spec.lto, extra, options, tiny), defined)
    _defines_all({s: v for s, v in wanted.items() if s not in preferences(spec)}, defined,
                 spec, src, extra)
    parts: dict[str, object] = {
        "recipe": RECIPE, "source": src.identity, "config": wanted, "clang": tc.clang_version,
        "lld": tc.lld_version, "arch": arch.name, "lto": spec.lto,
    }
    machine = kconfig.machine_files(wanted)
    if machine:
        raise UsageError(f"--fragment sets {', '.join(f'CONFIG_{s}' for s in machine)}: it "
                         "builds files of this machine into the kernel, which no cache key "
                         "follows; leave it out (ltoboot gives QEMU its own initramfs)")
    # a key or certificate file from outside the tree that a fragment names: its content
    if outside := kconfig.outside_files(wanted):
        parts["fragment_files"] = {s: cache.file_sha256(f) for s, f in sorted(outside.items())}
    if host := toolchain.host_inputs(toolchain.kconfig_reads_rustc(src.tree), cache.cache_root()):
        parts["host"] = host
    if spec.config != "tinyconfig":
        parts.update(base_key_parts(spec, src.tree))
    optional = frozenset(options) - set(kconfig.wanted_options(arch.fragment, spec.lto, extra,
                                                               {}, tiny))
    return Plan(spec, src, tc, wanted, cache.content_key(parts), left_out,
                frozenset(kconfig.follow_renames({s: "" for s in optional}, defined)),
                cache.content_key({k: v for k, v in parts.items()
                                   if k not in ("source", "config")}),
                cache.content_key({k: v for k, v in parts.items()
                                   if k not in ("source", "config", "base", "cleared")}),
                source.checkout_of(src))


def build_kernel(spec: BuildSpec) -> Kernel:
    """The kernel for `spec`, built at most once per machine (a cache hit costs milliseconds)."""
    p = plan(spec)
    for check, why in p.left_out.items():
        if needs.scope_gap(needs.CHECKS[check], spec.arch, spec.lto) is None:  # else: obvious
            say(f"{spec.label}: not asking for what check {check} needs: {why} (it will SKIP)")
    root = cache.cache_root()
    try:
        if not p.src.owned:  # a user's tree: its builds compile the cache's copy of it
            p = dataclasses.replace(p, src=_copy_of(p, root))
        entry = cache.publish(entry_dir(p.src, spec.label, p.key, root),
                              lambda tmp: _do_build(tmp, p, root))
    except BuildError as e:  # the report names the build that failed, as its plan did
        raise PlannedBuildError(e, p.key, p.checkout) from e
    # a cache hit says where this run's source came from (and metadata from before kernels
    # carried their checkout gets one)
    kernel = dataclasses.replace(Kernel.load(entry), checkout=p.checkout)
    if kernel.build_log is not None:  # a cache hit's report names the log of its build
        cache.shown(kernel.build_log)
    _index(root, kernel, entry, base_config_identity(spec), p)
    return kernel


def _copy_of(p: Plan, root: Path) -> source.KernelSource:
    """The cache's copy of the user's tree `p.src` (harness/kernel/copies.py): made from the
    tree of the nearest build when there is one, so that build can start this one."""
    home = copies.location(p.src.identity)
    copy = copies.Copy.of(home)
    if copy is None:
        src = p.src
        donor = find_donor(p, home / "build", root)
        if donor is not None and donor.align:
            copy = copies.make(src, donor.tree, donor.changed, donor.build_dir)
        else:
            copy = copies.make(src)
        say(f"{p.spec.label}: {copy.said}")
    cache.hold(copy.tree.parent)  # no prune removes it while its build is made or used
    return dataclasses.replace(p.src, tree=copy.tree, owned=True, files=None)


def _index(root: Path, kernel: Kernel, entry: Path, base: str, p: Plan) -> None:
    """A small record per build under <cache>/index/, wherever the build directory lives:
    for the progress line of the next build of its config, and for the builds that may start
    from it (a record from before it said what they need is written again)."""
    ref = root / "index" / f"{kernel.label}-{kernel.key}.json"
    try:
        if "near" in json.loads(ref.read_text()):
            return
    except (OSError, ValueError):
        pass
    ref.parent.mkdir(exist_ok=True)
    cache.write_atomic(ref, json.dumps({
        "entry": str(entry), "steps": kernel.steps, "build_seconds": kernel.build_seconds,
        "incremental": "incremental_from" in (kernel.extra or {}),
        "version": kernel.release, "compiler": kernel.compiler, "base": base,
        **nearest.record(p.kin, p.src.identity, p.src.tree, p.wanted,
                         f"{kernel.label} {kernel.key[:12]} of {kernel.source}", p.near)}))
