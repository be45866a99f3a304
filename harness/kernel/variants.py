"""Deliberately broken kernels, to show that a check catches a real breakage.

A variant is a copy of the base kernel's source tree with one file changed or one config
option set, built incrementally: the tree is copied with hard links (the changed file gets a
new inode), the base build directory is copied beside it, and make rebuilds what changed.
That works because the base was built in a direct subdirectory of its tree, where kbuild
records srctree as "..".
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness import cache, proc
from harness.arch import get_arch
from harness.errors import BuildError, InfraError, UsageError
from harness.kernel import kbuild, kconfig, toolchain
from harness.kernel.model import META, MODROOT, Kernel
from harness.progress import duration, say

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


def reverse_initcalls(tree: Path) -> None:
    replace_in_copy(tree / "scripts/generate_initcall_order.pl",
             "sort { $a <=> $b } keys(%{$initcalls})", "sort { $b <=> $a } keys(%{$initcalls})")


def unmerged_module_sections(tree: Path) -> None:
    replace_in_copy(tree / "scripts/module.lds.S", "#ifdef CONFIG_LTO_CLANG", "#if 0 /* ltoboot */")


def crcs_lost(tree: Path) -> None:
    # genksyms still records "#SYMVER <name> <crc>" in each object's .cmd file, modpost no
    # longer finds them: every export gets CRC 0, the failure "kbuild: lto: fix module
    # versioning" fixed when LTO objects were bitcode that the CRC step could not read
    replace_in_copy(tree / "scripts/mod/modpost.c", 'strstr(p, "\\n#SYMVER ")',
                    'strstr(p, "\\n#SYMVER-lost ")')


def versions_unchecked(tree: Path) -> None:
    replace_in_copy(tree / "kernel/module/version.c", "\t\tgoto bad_version;",
                    "\t\treturn 1; /* ltoboot: CRC mismatch ignored */")


def kallsyms_unstripped(tree: Path) -> None:
    # kallsyms no longer drops ".llvm.<hash>" before comparing: a static function promoted by
    # ThinLTO cannot be found by its C name (kprobes on it fail), as before "kallsyms: strip
    # ThinLTO hashes from static functions"
    replace_in_copy(tree / "kernel/kallsyms.c", 'res = strstr(s, ".llvm.");',
                    'res = NULL; /* ltoboot */')


def kallsyms_inexact(tree: Path) -> None:
    # Linux >= 6.11 looks names up exactly; this one compares each name with its .llvm.<hash>
    # cut off, as a botched backport of the old stripping would: the full name of a promoted
    # static function is then never found (kprobes on it fail)
    replace_in_copy(tree / "kernel/kallsyms.c",
                    "\t\tkallsyms_expand_symbol(off, namebuf, ARRAY_SIZE(namebuf));\n"
                    "\t\tret = strcmp(name, namebuf);",
                    "\t\tkallsyms_expand_symbol(off, namebuf, ARRAY_SIZE(namebuf));\n"
                    "\t\tif (strstr(namebuf, \".llvm.\")) /* ltoboot */\n"
                    "\t\t\t*strstr(namebuf, \".llvm.\") = 0;\n"
                    "\t\tret = strcmp(name, namebuf);", count=1)


def vdso_lto(tree: Path) -> None:
    # the vDSO compiled with the kernel's LTO flags again: the series' 23/28 (arm64) and 26/28
    # (x86_64) take them out
    x86 = tree / "arch/x86/entry/vdso/Makefile"
    replace_in_copy(x86, "KBUILD_CFLAGS := $(filter-out $(CC_FLAGS_LTO) ",
                    "KBUILD_CFLAGS := $(filter-out ", count=1)
    replace_in_copy(tree / "arch/arm64/kernel/vdso/Makefile",
                    "\t\t\t\t$(CC_FLAGS_LTO) $(CC_FLAGS_CFI) \\\n",
                    "\t\t\t\t$(CC_FLAGS_CFI) \\\n")


def mcount_unrecorded(tree: Path) -> None:
    # objtool runs on vmlinux.o (and LTO'd modules) without --mcount: no __mcount_loc, so
    # dynamic ftrace finds no call sites on x86_64, where clang has no -mrecord-mcount
    replace_in_copy(tree / "scripts/Makefile.lib",
                    "objtool-args-$(CONFIG_FTRACE_MCOUNT_USE_OBJTOOL)\t+= --mcount\n", "")


def notrace_ignored(tree: Path) -> None:
    # arm64's sched_clock.c compiled without -DCC_USING_PATCHABLE_FUNCTION_ENTRY: notrace falls
    # back to no_instrument_function, which -fpatchable-function-entry ignores, so the notrace
    # sched_clock becomes traceable. Before "arm64: export CC_USING_PATCHABLE_FUNCTION_ENTRY"
    # every file lacked it; one file shows the same and rebuilds in seconds, not the tree.
    path = tree / "kernel/time/Makefile"
    replace_in_copy(path, path.read_text(), path.read_text()
                    + "CFLAGS_REMOVE_sched_clock.o += -DCC_USING_PATCHABLE_FUNCTION_ENTRY\n")


def rodata_executable(tree: Path) -> None:
    # LKDTM's rodata.o is copied without moving its function into .rodata: it stays
    # executable, as when LTO turned rodata.o into bitcode that objcopy could not rework
    replace_in_copy(tree / "drivers/misc/lkdtm/Makefile",
                    "--rename-section .noinstr.text=.rodata,alloc,readonly,load,contents",
                    "--strip-debug")


def hyp_sections_narrowed(tree: Path) -> None:
    # the nVHE hyp sections take NAME only, not LTO's per-function NAME.* sections: those
    # land in the kernel's own .text, outside what EL2 maps
    replace_in_copy(tree / "arch/arm64/include/asm/hyp_image.h", "*(NAME NAME##.*)",
                    "*(NAME)")


def efi_stub_lto(tree: Path) -> None:
    # the EFI stub compiled with LTO flags again, undoing "efi/libstub: disable LTO"
    replace_in_copy(tree / "drivers/firmware/efi/libstub/Makefile",
                    "KBUILD_CFLAGS := $(filter-out $(CC_FLAGS_LTO), $(KBUILD_CFLAGS))\n", "")


def pci_fixups_unstubbed(tree: Path) -> None:
    # PCI fixup entries name the static hooks from inline asm even under LTO, as before "PCI:
    # Fix PREL32 relocations for LTO" (LTO may rename or drop what only the asm names)
    replace_in_copy(tree / "include/linux/pci.h",
                    "#ifdef CONFIG_LTO_CLANG\n#define __DECLARE_PCI_FIXUP_SECTION",
                    "#if 0 /* ltoboot */\n#define __DECLARE_PCI_FIXUP_SECTION")


def import_limit_dropped(tree: Path) -> None:
    # ThinLTO imports (inlines across files) without the kernel's limit: "kbuild: lto: limit
    # inlining" undone; the kernel still works, only bigger, so the build outputs tell
    replace_in_copy(tree / "Makefile", "KBUILD_LDFLAGS += -mllvm -import-instr-limit=5\n", "")


@dataclass(frozen=True)
class Variant:
    name: str
    breaks: str  # what it breaks, for the reader
    patch: Callable[[Path], None] | None = None
    config: dict[str, str] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("initcalls-reversed", "generate_initcall_order.pl emits each object's initcalls "
            "in reverse", patch=reverse_initcalls),
    Variant("modules-unmerged", "module.lds.S no longer merges LTO's split sections",
            patch=unmerged_module_sections),
    Variant("crcs-lost", "modpost no longer reads the CRCs genksyms recorded: all are zero",
            patch=crcs_lost),
    Variant("versions-unchecked", "the module loader ignores a CRC mismatch",
            patch=versions_unchecked),
    Variant("kallsyms-unstripped", "kallsyms keeps .llvm.<hash> suffixes when looking up "
            "names (Linux < 6.11, which strips them)", patch=kallsyms_unstripped),
    Variant("kallsyms-inexact", "kallsyms compares names without their .llvm.<hash> (Linux "
            ">= 6.11, which matches exactly)", patch=kallsyms_inexact),
    Variant("mcount-unrecorded", "objtool no longer records mcount call sites (no --mcount)",
            patch=mcount_unrecorded),
    Variant("notrace-ignored", "arm64's notrace no longer keeps sched_clock out of ftrace",
            patch=notrace_ignored),
    Variant("rodata-executable", "LKDTM's rodata function stays in executable text",
            patch=rodata_executable),
    Variant("hyp-sections-narrowed", "the nVHE hyp linker script misses LTO's per-function "
            "sections", patch=hyp_sections_narrowed),
    Variant("efi-stub-lto", "the EFI stub is compiled with LTO flags", patch=efi_stub_lto),
    Variant("pci-fixups-unstubbed", "PCI fixup entries name the static hooks directly under "
            "LTO", patch=pci_fixups_unstubbed),
    Variant("import-limit-dropped", "ThinLTO links without -import-instr-limit",
            patch=import_limit_dropped),
    Variant("vdso-lto", "the vDSO is compiled with the kernel's LTO flags", patch=vdso_lto),
    Variant("cfi-permissive", "CFI violations are reported but not stopped",
            config={"CFI_PERMISSIVE": "y"}),
)}


def _copy_tree(src: Path, dest: Path) -> None:
    dest.mkdir()
    for item in sorted(src.iterdir()):
        if item.name.startswith((".ltoboot-", ".tmp-.ltoboot-")):
            continue  # build directories of the base tree
        proc.run(["cp", "-al", str(item), str(dest / item.name)], what="copying the tree",
                 error=InfraError)


def _build(tmp: Path, base: Kernel, v: Variant, key: str) -> None:
    assert base.build_dir is not None and base.source_tree is not None
    tmp.mkdir()
    tree = tmp / base.source_tree.name
    copy_started = time.monotonic()
    _copy_tree(base.source_tree, tree)
    if v.patch:
        v.patch(tree)
    out = tree / f".ltoboot-{base.label}-{v.name}"
    proc.run(["cp", "-a", str(base.build_dir), str(out)], what="copying the build directory",
             error=InfraError)
    shutil.rmtree(out / MODROOT, ignore_errors=True)
    (out / META).unlink(missing_ok=True)
    root = cache.cache_root()
    log = root / "logs" / f"variant-{base.label}-{v.name}-{key[:12]}.log"
    make = kbuild.Kbuild(tree, out, get_arch(base.arch), toolchain.of_kernel(base), log,
                         f"{base.label}+{v.name}")
    say(f"building variant {v.name} of {base.label} ({v.breaks}); log: {log}")
    copy_seconds = time.monotonic() - copy_started
    with kbuild.machine_lock(f"variant {v.name}"):
        started = time.monotonic() - copy_seconds  # copying and building, not waiting
        if v.config:
            config = out / ".config"
            config.write_text(kconfig.apply(config.read_text(), v.config))
            make("olddefconfig")
            problems = kconfig.not_stuck(v.config, kconfig.parse(config.read_text()))
            if problems:
                raise BuildError(f"variant {v.name}: Kconfig dropped " + "; ".join(problems),
                                 log=log)
        make(jobs=kbuild.jobs())
        make("modules_install", jobs=kbuild.jobs(),
             variables=[f"INSTALL_MOD_PATH={out / MODROOT}", "INSTALL_MOD_STRIP=1"])
    seconds = time.monotonic() - started
    kernel = dataclasses.replace(
        base, image=out / get_arch(base.arch).image, config=out / ".config",
        system_map=out / "System.map", modules=out / MODROOT, build_dir=out, source_tree=tree,
        key=key, build_log=log, build_seconds=round(seconds, 1), steps=make.steps,
        source=f"{base.source} + variant {v.name}", extra={"variant": v.name,
                                                          "breaks": v.breaks},
    )
    kernel.save(out)
    say(f"built variant {v.name} of {base.label} in {duration(seconds)} ({make.steps} steps)")


def build_variant(base: Kernel, name: str) -> Kernel:
    """`base` broken as variant `name` says, built incrementally from base's build."""
    v = VARIANTS.get(name)
    if v is None:
        raise UsageError(f"unknown variant {name!r}: use one of {', '.join(VARIANTS)}")
    if base.build_dir is None or base.source_tree is None \
            or base.build_dir.parent != base.source_tree:
        raise UsageError(f"{base.label}: variants need a kernel built by ltoboot from a tree it "
                         "owns (the default tarball)")
    key = cache.content_key({"recipe": RECIPE, "base": base.key, "variant": name,
                             "config": v.config,
                             "patch": inspect.getsource(v.patch) if v.patch else ""})
    entry = cache.publish(cache.cache_root() / "variants" / f"{base.label}-{name}-{key}",
                          lambda tmp: _build(tmp, base, v, key))
    out = entry / base.source_tree.name / f".ltoboot-{base.label}-{name}"
    return Kernel.load(out)
