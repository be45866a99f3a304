"""What covers each patch of the series that started the project, "Add support for Clang LTO"
v2 (28 patches, Sami Tolvanen, 2020; ../shared/seeds), on Linux 6.1: a run-time check, a
check on the build outputs, the build itself, or nothing because 6.1 no longer has that code.
Each check also names the deliberately broken build (harness/kernel/variants.py) that shows
it failing. docs/series-coverage.md's table is `ltoboot coverage`; a run's report can print the
verdicts per patch (`ltoboot run --coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.kernel.variants import VARIANTS

RUN_TIME, BUILD_OUTPUTS, BUILD_ONLY, NOT_IN_6_1, NOT_EXERCISED = (
    "run-time", "build outputs", "build-only", "not in 6.1", "not exercised")


@dataclass(frozen=True)
class Patch:
    number: int
    title: str
    kind: str
    checks: tuple[str, ...] = ()  # the checks that exercise it
    note: str = ""
    arches: tuple[str, ...] = ()  # where the patch applies (empty: everywhere)
    also_fails_on: tuple[str, ...] = ()  # kernels its checks fail on that are no variant

    @property
    def label(self) -> str:
        return f"{self.number:02d}/28"

    @property
    def broken_by(self) -> tuple[str, ...]:
        """What its checks are shown failing on: the broken builds of the catalogue
        (harness/kernel/variants.py) that say they break it, then other kernels."""
        return tuple(v.name for v in VARIANTS.values() if self.number in v.patches) \
            + self.also_fails_on


SERIES = "Add support for Clang LTO (v2, 28 patches)"
PATCHES: tuple[Patch, ...] = (
    Patch(1, "x86/boot/compressed: Disable relocation relaxation", BUILD_ONLY,
          note="the decompressor links with LLD and every guest boots through it",
          arches=("x86_64",)),
    Patch(2, "x86/asm: Replace __force_order with memory clobber", BUILD_ONLY,
          note="vmlinux links without a __force_order symbol", arches=("x86_64",)),
    Patch(3, "lib/string.c: implement stpcpy", BUILD_ONLY,
          note="clang lowers sprintf() to stpcpy(): vmlinux links"),
    Patch(4, "RAS/CEC: Fix cec_init() prototype", NOT_EXERCISED,
          note="CONFIG_RAS_CEC is not in our kernels"),
    Patch(5, "objtool: Add a pass for generating __mcount_loc", RUN_TIME,
          ("ftrace", "build_outputs"), arches=("x86_64",)),
    Patch(6, "objtool: Don't autodetect vmlinux.o", BUILD_OUTPUTS, ("build_outputs",),
          note="objtool is run on vmlinux.o with an explicit --link"),
    Patch(7, "kbuild: add support for objtool mcount", RUN_TIME, ("ftrace", "build_outputs"),
          arches=("x86_64",)),
    Patch(8, "x86, build: use objtool mcount", RUN_TIME, ("ftrace", "build_outputs"),
          note="clang has no -mrecord-mcount on x86_64", arches=("x86_64",)),
    Patch(9, "kbuild: add support for Clang LTO", RUN_TIME,
          ("lto_config", "proc_version", "lto_elf_note"), also_fails_on=("no-LTO kernel",)),
    Patch(10, "kbuild: lto: fix module versioning", RUN_TIME, ("symvers_crcs", "modversions")),
    Patch(11, "kbuild: lto: postpone objtool", BUILD_OUTPUTS, ("build_outputs", "ftrace"),
          note="objtool runs on vmlinux.o, after LTO"),
    Patch(12, "kbuild: lto: limit inlining", BUILD_OUTPUTS, ("build_outputs",),
          note="ThinLTO only: -import-instr-limit on the vmlinux.o link"),
    Patch(13, "kbuild: lto: merge module sections", RUN_TIME, ("probe_modules",)),
    Patch(14, "kbuild: lto: remove duplicate dependencies from .mod files", BUILD_ONLY,
          note="our M= modules build and pass modpost"),
    Patch(15, "init: lto: ensure initcall ordering", RUN_TIME, ("initcall_order",),
          note="against a non-LTO build: ltoboot run --initcalls"),
    Patch(16, "init: lto: fix PREL32 relocations", RUN_TIME, ("initcall_order",),
          note="every initcall is found through its __initcall stub and runs in order"),
    Patch(17, "PCI: Fix PREL32 relocations for LTO", RUN_TIME, ("pci_fixups",),
          note="q35: fixups are called through their __UNIQUE_ID_ stubs", arches=("x86_64",)),
    Patch(18, "modpost: lto: strip .lto from module names", NOT_IN_6_1, ("probe_modules",),
          note="6.1 makes no .lto.o files (modules are LTO-linked by modfinal); module names "
          "are still checked"),
    Patch(19, "scripts/mod: disable LTO for empty.c", BUILD_ONLY,
          note="modpost reads the device table offsets from a native empty.o"),
    Patch(20, "efi/libstub: disable LTO", RUN_TIME, ("efi_stub",),
          note="booted by UEFI firmware (qemu-efi-aarch64); with LTO flags the stub does not even "
          "build: llvm-strip cannot read bitcode",
          arches=("arm64",)),
    Patch(21, "drivers/misc/lkdtm: disable LTO for rodata.o", RUN_TIME,
          ("lkdtm_rodata", "build_outputs")),
    Patch(22, "arm64: export CC_USING_PATCHABLE_FUNCTION_ENTRY", RUN_TIME, ("ftrace",),
          note="notrace sched_clock is not traceable; not in the seed's "
          "copy of the list",
          arches=("arm64",)),
    Patch(23, "arm64: vdso: disable LTO", RUN_TIME, ("vdso",), arches=("arm64",)),
    Patch(24, "KVM: arm64: disable LTO for the nVHE directory", RUN_TIME, ("kvm_nvhe",),
          note="6.1 builds nVHE with LTO; its linker script takes LTO's per-function sections. "
          "Broken, the boot hangs in KVM's initialization",
          arches=("arm64",)),
    Patch(25, "arm64: allow LTO_CLANG and THINLTO to be selected", RUN_TIME, ("lto_config",),
          arches=("arm64",), also_fails_on=("no-LTO kernel",)),
    Patch(26, "x86, vdso: disable LTO only for vDSO", RUN_TIME, ("vdso",), arches=("x86_64",)),
    Patch(27, "x86, relocs: Ignore L4_PAGE_OFFSET relocations", NOT_IN_6_1,
          note="arch/x86/tools/relocs.c has no L4_PAGE_OFFSET case: not merged in this form",
          arches=("x86_64",)),
    Patch(28, "x86, build: allow LTO_CLANG and THINLTO to be selected", RUN_TIME, ("lto_config",),
          arches=("x86_64",), also_fails_on=("no-LTO kernel",)),
)


def covered_by(check: str) -> list[str]:
    """The patches (NN/28) a check exercises."""
    return [p.label for p in PATCHES if check in p.checks]


def _what(p: Patch) -> str:
    what = p.kind + (": " + ", ".join(f"`{c}`" for c in p.checks) if p.checks else "")
    extra = ", ".join(filter(None, [", ".join(p.arches), p.note]))
    return what + (f" ({extra})" if extra else "")


def markdown() -> str:
    """docs/series-coverage.md's table."""
    rows = ["| patch | covered on Linux 6.1 by | shown failing on |", "| --- | --- | --- |"]
    for p in PATCHES:
        broken = ", ".join(f"`{b}`" if " " not in b else b for b in p.broken_by)
        rows.append(f"| {p.label} {p.title} | {_what(p)} | {broken or '-'} |")
    return "\n".join(rows) + "\n"


def verdicts(results: Iterable[tuple[str, str, str, str]]) -> list[str]:
    """One line per patch from a run's (kernel label, arch, check, PASS/FAIL/SKIP): the
    verdicts of the checks that cover it on the arches it applies to, or what covers it."""
    seen: dict[str, list[tuple[str, str]]] = {}
    for label, arch, check, verdict in results:
        seen.setdefault(check, []).append((arch, f"{label} {verdict}"))
    lines = []
    for p in PATCHES:
        ran = [f"{c}: " + ", ".join(v for arch, v in seen[c]
                                    if not p.arches or arch in p.arches)
               for c in p.checks if c in seen]
        lines.append(f"{p.label} {p.title}: " + ("; ".join(ran) if ran else _what(p)))
    return lines
