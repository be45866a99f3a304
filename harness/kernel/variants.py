"""Deliberately broken kernels, to show that a check catches a real breakage.

A variant is a copy of the base kernel's source tree with one file changed or one config
option set, built incrementally: the tree is copied with hard links (the changed file gets a
new inode), the base build directory is copied beside it, and make rebuilds what changed.
That works because the base was built in a direct subdirectory of its tree, where kbuild
records srctree as "..".

Variants whose breakages are independent share one kernel (BUNDLES): each ThinLTO relink of
vmlinux costs a minute or more, and ten variants built apart were most of a cold suite. A
shared kernel is honest only if every member's check fails with that member's own message and
every check no member names gives the base kernel's verdict; tests/test_broken_variants.py
shows both on the real kernel.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from harness.base import cache, proc
from harness.base.arch import get_arch
from harness.base.errors import BuildError, InfraError, UsageError
from harness.base.progress import duration, say
from harness.kernel import build, failures, kbuild, kconfig, stamps, toolchain
from harness.kernel.model import META, MODROOT, Kernel

RECIPE = 1


def replace_in_copy(path: Path, old: str, new: str, count: int = -1) -> None:
    """Replace `old` by `new` in a hard-linked file without touching the original's inode."""
    text = path.read_text()
    if old not in text:
        raise UsageError(f"{path}: the text to change is not there; the tree differs")
    tmp = path.with_name(path.name + ".ltoboot-tmp")
    tmp.write_text(text.replace(old, new, count))
    shutil.copymode(path, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Edit:
    """One change to a file of the tree: `old` replaced by `new` (`count` times, -1: all), or,
    with `old` empty, `new` appended."""

    path: str  # relative to the tree's top
    old: str
    new: str
    count: int = -1

    def apply(self, tree: Path) -> None:
        f = tree / self.path
        if self.old:
            replace_in_copy(f, self.old, self.new, self.count)
        else:
            replace_in_copy(f, f.read_text(), f.read_text() + self.new)


class Shown(StrEnum):
    """How the breakage shows: a check that fails, or the build or the boot that does."""

    CHECK = "check"  # the check fails, its summary saying `says`
    BUILD = "build"  # the kernel does not build; the build log says `says`
    BOOT = "boot"  # the guest never reaches its shell; the console says `says`


@dataclass(frozen=True)
class Caught:
    check: str  # the check that catches it (for BUILD and BOOT: the check guarding the fix)
    says: str  # what its failure says (a part of the summary, log or console)
    arches: tuple[str, ...] = ()  # where it is shown; empty: on the primary arch
    shown: Shown = Shown.CHECK


@dataclass(frozen=True)
class Variant:
    name: str
    breaks: str  # what it breaks, for the reader
    why: str = ""  # how, and what upstream fix it undoes
    edits: tuple[Edit, ...] = ()
    config: dict[str, str] = field(default_factory=dict)
    caught_by: tuple[Caught, ...] = ()
    patches: tuple[int, ...] = ()  # the patches of the LTO series (coverage.py) it breaks
    # shown failing by a test of its own (a comparison, several checks, another kernel),
    # rather than by the generated one that runs each `caught_by` check
    own_test: str = ""

    def key(self) -> dict[str, object]:
        """What the variant is, for its cache key: the edits and the config, as data."""
        return {"edits": [dataclasses.asdict(e) for e in self.edits], "config": self.config}


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("initcalls-reversed", "generate_initcall_order.pl emits each object's initcalls "
            "in reverse",
            edits=(Edit("scripts/generate_initcall_order.pl",
                        "sort { $a <=> $b } keys(%{$initcalls})",
                        "sort { $b <=> $a } keys(%{$initcalls})"),),
            caught_by=(Caught("initcall_order", "differs"),), patches=(15,),
            own_test="tests/test_lto_depth.py::test_reversed_initcall_order_is_caught"),
    Variant("modules-unmerged", "module.lds.S no longer merges LTO's split sections",
            edits=(Edit("scripts/module.lds.S", "#ifdef CONFIG_LTO_CLANG",
                        "#if 0 /* ltoboot */"),),
            caught_by=(Caught("probe_modules", "split sections not merged"),), patches=(13,)),
    Variant("crcs-lost", "modpost no longer reads the CRCs genksyms recorded: all are zero",
            "genksyms still records \"#SYMVER <name> <crc>\" in each object's .cmd file, "
            "modpost no longer finds them: every export gets CRC 0, the failure \"kbuild: "
            "lto: fix module versioning\" fixed when LTO objects were bitcode that the CRC "
            "step could not read",
            edits=(Edit("scripts/mod/modpost.c", 'strstr(p, "\\n#SYMVER ")',
                        'strstr(p, "\\n#SYMVER-lost ")'),),
            caught_by=(Caught("symvers_crcs", "CRCs are zero"),
                       Caught("modversions", "lost its CRCs")), patches=(10,),
            own_test="tests/test_lto_depth.py::test_lost_crcs_are_caught"),
    Variant("versions-unchecked", "the module loader ignores a CRC mismatch",
            edits=(Edit("kernel/module/version.c", "\t\tgoto bad_version;",
                        "\t\treturn 1; /* ltoboot: CRC mismatch ignored */"),),
            caught_by=(Caught("modversions", "the module with a wrong CRC for "
                              "ltoboot_probe_value was loaded"),), patches=(10,),
            own_test="tests/test_lto_depth.py::test_ignored_crc_mismatch_is_caught"),
    Variant("kallsyms-unstripped", "kallsyms keeps .llvm.<hash> suffixes when looking up "
            "names (Linux < 6.11, which strips them)",
            "a static function promoted by ThinLTO cannot be found by its C name (kprobes on "
            "it fail), as before \"kallsyms: strip ThinLTO hashes from static functions\"",
            edits=(Edit("kernel/kallsyms.c", 'res = strstr(s, ".llvm.");',
                        "res = NULL; /* ltoboot */"),),
            caught_by=(Caught("llvm_symbols", "none could be found by its plain name"),)),
    Variant("kallsyms-inexact", "kallsyms compares names without their .llvm.<hash> (Linux "
            ">= 6.11, which matches exactly)",
            "as a botched backport of the old stripping would: the full name of a promoted "
            "static function is then never found (kprobes on it fail)",
            edits=(Edit("kernel/kallsyms.c",
                        "\t\tkallsyms_expand_symbol(off, namebuf, ARRAY_SIZE(namebuf));\n"
                        "\t\tret = strcmp(name, namebuf);",
                        "\t\tkallsyms_expand_symbol(off, namebuf, ARRAY_SIZE(namebuf));\n"
                        "\t\tif (strstr(namebuf, \".llvm.\")) /* ltoboot */\n"
                        "\t\t\t*strstr(namebuf, \".llvm.\") = 0;\n"
                        "\t\tret = strcmp(name, namebuf);", count=1),),
            caught_by=(Caught("llvm_symbols", "none could be found by its full name"),),
            own_test="tests/test_support_matrix.py::"
            "test_6_12_kallsyms_that_is_not_exact_fails_llvm_symbols"),
    Variant("mcount-unrecorded", "objtool no longer records mcount call sites (no --mcount)",
            "objtool runs on vmlinux.o (and LTO'd modules) without --mcount: no __mcount_loc, "
            "so dynamic ftrace finds no call sites on x86_64, where clang has no "
            "-mrecord-mcount",
            edits=(Edit("scripts/Makefile.lib",
                        "objtool-args-$(CONFIG_FTRACE_MCOUNT_USE_OBJTOOL)\t+= --mcount\n", ""),),
            caught_by=(Caught("ftrace", "No functions to be traced", ("x86_64",)),
                       Caught("build_outputs", "objtool on vmlinux.o without --mcount",
                              ("x86_64",))),
            patches=(5, 7, 8, 11)),
    Variant("notrace-ignored", "arm64's notrace no longer keeps sched_clock out of ftrace",
            "sched_clock.c compiled without -DCC_USING_PATCHABLE_FUNCTION_ENTRY: notrace falls "
            "back to no_instrument_function, which -fpatchable-function-entry ignores. Before "
            "\"arm64: export CC_USING_PATCHABLE_FUNCTION_ENTRY\" every file lacked it; one "
            "file shows the same and rebuilds in seconds, not the tree",
            edits=(Edit("kernel/time/Makefile", "",
                        "CFLAGS_REMOVE_sched_clock.o += -DCC_USING_PATCHABLE_FUNCTION_ENTRY\n"),),
            caught_by=(Caught("ftrace", "sched_clock is notrace yet listed", ("arm64",)),),
            patches=(22,)),
    Variant("rodata-executable", "LKDTM's rodata function stays in executable text",
            "rodata.o is copied without moving its function into .rodata, as when LTO turned "
            "rodata.o into bitcode that objcopy could not rework",
            edits=(Edit("drivers/misc/lkdtm/Makefile",
                        "--rename-section .noinstr.text=.rodata,alloc,readonly,load,contents",
                        "--strip-debug"),),
            caught_by=(Caught("lkdtm_rodata", "rodata is executable", ("x86_64",)),
                       Caught("build_outputs", "outside .rodata", ("x86_64",))),
            patches=(21,)),
    Variant("hyp-sections-narrowed", "the nVHE hyp linker script misses LTO's per-function "
            "sections",
            "the nVHE hyp sections take NAME only, not LTO's per-function NAME.* sections: "
            "those land in the kernel's own .text, outside what EL2 maps; the boot hangs in "
            "KVM's initialization",
            edits=(Edit("arch/arm64/include/asm/hyp_image.h", "*(NAME NAME##.*)",
                        "*(NAME)"),),
            caught_by=(Caught("kvm_nvhe", "kvm [1]", ("arm64",), Shown.BOOT),),
            patches=(24,), own_test="tests/test_series_coverage.py::"
            "test_hyp_code_outside_its_sections_stops_the_boot_in_kvm"),
    Variant("efi-stub-lto", "the EFI stub is compiled with LTO flags",
            "undoing \"efi/libstub: disable LTO\": the stub's objects become LLVM bitcode "
            "that the STUBCPY step (llvm-strip, llvm-objcopy) cannot rework",
            edits=(Edit("drivers/firmware/efi/libstub/Makefile",
                        "KBUILD_CFLAGS := $(filter-out $(CC_FLAGS_LTO), $(KBUILD_CFLAGS))\n",
                        ""),),
            caught_by=(Caught("efi_stub", "not recognized as a valid object", ("arm64",),
                              Shown.BUILD),),
            patches=(20,),
            own_test="tests/test_series_coverage.py::test_efi_stub_with_lto_flags_does_not_build"),
    Variant("pci-fixups-unstubbed", "PCI fixup entries name the static hooks directly under "
            "LTO",
            "the entries name the static hooks from inline asm even under LTO, as before "
            "\"PCI: Fix PREL32 relocations for LTO\" (LTO may rename or drop what only the asm "
            "names); these run anyway (ThinLTO kept their names), so what fails is the "
            "mechanism LTO needs, not yet the boot",
            edits=(Edit("include/linux/pci.h",
                        "#ifdef CONFIG_LTO_CLANG\n#define __DECLARE_PCI_FIXUP_SECTION",
                        "#if 0 /* ltoboot */\n#define __DECLARE_PCI_FIXUP_SECTION"),),
            caught_by=(Caught("pci_fixups", "called without an __UNIQUE_ID_ stub",
                              ("x86_64",)),),
            patches=(17,)),
    Variant("import-limit-dropped", "ThinLTO links without -import-instr-limit",
            "\"kbuild: lto: limit inlining\" undone: the kernel still works, only bigger, so "
            "the build outputs tell",
            edits=(Edit("Makefile", "KBUILD_LDFLAGS += -mllvm -import-instr-limit=5\n", ""),),
            caught_by=(Caught("build_outputs", "no -import-instr-limit in the vmlinux.o link",
                              ("x86_64",)),),
            patches=(12,)),
    Variant("vdso-lto", "the vDSO is compiled with the kernel's LTO flags",
            "the series' 23/28 (arm64) and 26/28 (x86_64) take them out",
            edits=(Edit("arch/x86/entry/vdso/Makefile",
                        "KBUILD_CFLAGS := $(filter-out $(CC_FLAGS_LTO) ",
                        "KBUILD_CFLAGS := $(filter-out ", count=1),
                   Edit("arch/arm64/kernel/vdso/Makefile",
                        "\t\t\t\t$(CC_FLAGS_LTO) $(CC_FLAGS_CFI) \\\n",
                        "\t\t\t\t$(CC_FLAGS_CFI) \\\n")),
            caught_by=(Caught("vdso", "the vDSO does not export", ("x86_64", "arm64")),),
            patches=(23, 26)),
    Variant("secondaries-down", "no secondary CPU is brought up: the kernel runs on its boot "
            "CPU alone",
            "smp_init() no longer brings up the other CPUs, as when a secondary's bring-up "
            "code goes wrong (the seed's 02/28 orders the control-register writes it depends "
            "on): the guest boots, on one of its vCPUs",
            edits=(Edit("kernel/smp.c", "\tbringup_nonboot_cpus(setup_max_cpus);",
                        "\t/* ltoboot: no secondary CPU is brought up */", count=1),),
            caught_by=(Caught("smp", "of 2 vCPUs online", ("x86_64", "arm64")),)),
    Variant("cfi-permissive", "CFI violations are reported but not stopped",
            config={"CFI_PERMISSIVE": "y"},
            caught_by=(Caught("cfi", "CFI not enforced"),)),
)}


# Built as one kernel per base: the members that apply to it (their edits are there to make,
# and the base's arch is one they are shown on). Not here: a breakage that stops the build or
# the boot (efi-stub-lto, hyp-sections-narrowed), one whose check another member's breakage
# would fail too (crcs-lost zeroes every CRC: modversions, which versions-unchecked breaks),
# and one of another kernel version (kallsyms-inexact: Linux >= 6.11).
BUNDLES: tuple[tuple[str, ...], ...] = (
    ("cfi-permissive", "import-limit-dropped", "initcalls-reversed", "kallsyms-unstripped",
     "mcount-unrecorded", "modules-unmerged", "notrace-ignored", "pci-fixups-unstubbed",
     "rodata-executable", "secondaries-down", "vdso-lto", "versions-unchecked"),
)


def _applies(v: Variant, tree: Path, arch: str) -> bool:
    """Whether `v` can be made on `tree` and is shown on `arch`."""
    arches = {a for c in v.caught_by for a in c.arches}
    if arches and arch not in arches:
        return False
    for e in v.edits:
        f = tree / e.path
        try:
            if e.old and e.old not in f.read_text():
                return False
        except OSError:
            return False
    return True


def sharing(base: Kernel, name: str) -> list[Variant]:
    """The variants built into the kernel that shows `name` broken on `base`, sorted: `name`
    and, when it is in a bundle and can be made there, the bundle's other members that can."""
    v = VARIANTS.get(name)
    if v is None:
        raise UsageError(f"unknown variant {name!r}: use one of {', '.join(VARIANTS)}")
    assert base.source_tree is not None
    bundle = next((b for b in BUNDLES if name in b), ())
    if not _applies(v, base.source_tree, base.arch):
        return [v]  # made alone: its edit says what does not fit
    return sorted((VARIANTS[m] for m in bundle
                   if m == name or _applies(VARIANTS[m], base.source_tree, base.arch)),
                  key=lambda m: m.name) or [v]


def shown_to_fail() -> list[tuple[str, str, Caught]]:
    """(variant, arch or "" for the primary one, caught) for every check a variant is shown
    failing by the generated test, sorted (xdist needs one order on every worker)."""
    return sorted(((v.name, arch, c) for v in VARIANTS.values() if not v.own_test
                   for c in v.caught_by if c.shown is Shown.CHECK
                   for arch in (c.arches or ("",))), key=lambda t: (t[0], t[1], t[2].check))


def _copy_tree(src: Path, dest: Path) -> None:
    dest.mkdir()
    for item in sorted(src.iterdir()):
        if item.name.startswith((".ltoboot-", ".tmp-.ltoboot-")):
            continue  # build directories of the base tree
        proc.run(["cp", "-al", str(item), str(dest / item.name)], what="copying the tree",
                 error=InfraError)


def _build(tmp: Path, base: Kernel, members: list[Variant], key: str, name: str) -> None:
    assert base.build_dir is not None and base.source_tree is not None
    tmp.mkdir()
    tree = tmp / base.source_tree.name
    copy_started = time.monotonic()
    _copy_tree(base.source_tree, tree)
    for v in members:
        for edit in v.edits:
            edit.apply(tree)
    out = tree / f".ltoboot-{base.label}-{name}"
    proc.run(["cp", "-a", str(base.build_dir), str(out)], what="copying the build directory",
             error=InfraError)
    shutil.rmtree(out / MODROOT, ignore_errors=True)
    (out / META).unlink(missing_ok=True)
    # what the variants change is new to make, whatever the clock says of the base's build
    edited = sorted({e.path for v in members for e in v.edits})
    when = stamps.stamp_after(base.build_dir)
    for rel in edited:
        stamps.stamp(tree, rel, when)
    root = cache.cache_root()
    log = root / "logs" / f"variant-{base.label}-{name}-{key[:12]}.log"
    make = kbuild.Kbuild(tree, out, get_arch(base.arch), toolchain.of_kernel(base), log,
                         f"{base.label}+{name}")
    names = ", ".join(v.name for v in members)
    breaks = "; ".join(f"{v.name}: {v.breaks}" for v in members)
    say(f"building variant{'s' if len(members) > 1 else ''} {names} of {base.label} "
        f"({breaks if len(members) == 1 else 'one kernel, independent breakages'}); log: {log}")
    config: dict[str, str] = {}
    for v in members:
        config.update(v.config)

    def configure() -> dict[str, str]:
        """The base's .config with the variants' options (afresh after a missed change)."""
        dot_config = out / ".config"
        if not dot_config.exists():
            shutil.copyfile(base.config, dot_config)
        if config:
            dot_config.write_text(kconfig.apply(dot_config.read_text(), config))
            make("olddefconfig")
            problems = kconfig.not_stuck(config, kconfig.parse(dot_config.read_text()))
            if problems:
                raise BuildError(f"variant {name}: Kconfig dropped " + "; ".join(problems),
                                 log=log)
        return {}

    copy_seconds = time.monotonic() - copy_started
    with kbuild.machine_lock(f"variant {name}"):
        started = time.monotonic() - copy_seconds  # copying and building, not waiting
        start = build.Start({}, True, frozenset(edited), when)
        said, _ = build.build_in(out, make, f"{base.label}+{name}", start, configure,
                                 modules=True)
    seconds = time.monotonic() - started
    kernel = dataclasses.replace(
        base, image=out / get_arch(base.arch).image, config=out / ".config",
        system_map=out / "System.map", modules=out / MODROOT, build_dir=out, source_tree=tree,
        key=key, build_log=log, build_seconds=round(seconds, 1), steps=make.steps,
        source=f"{base.source} + variant{'s' if len(members) > 1 else ''} {names}",
        extra={"variant": name, "variants": " ".join(v.name for v in members),
               "breaks": breaks, **said},
    )
    kernel.save(out)
    say(f"built variant{'s' if len(members) > 1 else ''} {names} of {base.label} in "
        f"{duration(seconds)} ({make.steps} steps{make.ccache_said()})")


def build_variant(base: Kernel, name: str) -> Kernel:
    """A kernel that is `base` broken as variant `name` says (and, when `name` is in a
    bundle, as its members that apply to `base` say), built incrementally from base's build."""
    if name not in VARIANTS:
        raise UsageError(f"unknown variant {name!r}: use one of {', '.join(VARIANTS)}")
    if base.build_dir is None or base.source_tree is None \
            or base.build_dir.parent != base.source_tree:
        raise UsageError(f"{base.label}: variants need a kernel built by ltoboot from a tree it "
                         "owns (the default tarball)")
    members = sharing(base, name)
    if len(members) == 1:  # the key variants built alone always had
        v = members[0]
        key = cache.content_key({"recipe": RECIPE, "base": base.key, "variant": v.name,
                                 **v.key()})
        entry_name = v.name
    else:
        key = cache.content_key({"recipe": RECIPE, "base": base.key,
                                 "variants": {v.name: v.key() for v in members}})
        entry_name = f"{len(members)}-variants-{key[:8]}"
    where = cache.cache_root() / "variants" / f"{base.label}-{entry_name}-{key}"
    failures.raise_if_remembered(where)  # a variant that does not build, like the EFI stub's
    try:
        entry = cache.publish(where, lambda tmp: _build(tmp, base, members, key, entry_name))
    except BuildError as e:
        failures.remember(where, e)
        raise
    out = entry / base.source_tree.name / f".ltoboot-{base.label}-{entry_name}"
    # the base's checkout: this run's, also for a variant built before kernels carried one
    kernel = dataclasses.replace(Kernel.load(out), checkout=base.checkout)
    if kernel.build_log is not None:  # a cache hit's report names the log of its build
        cache.shown(kernel.build_log)
    return kernel
