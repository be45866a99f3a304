"""What each check needs from a kernel, as data: one table that the builder reads to ask Kconfig
for exactly what the toolchain can give, and that the checks read to say SKIP, with the reason,
where a kernel lacks it (a prebuilt kernel without LKDTM, a clang 14 build without kCFI). Its
order is the checks' run and report order.

Pure data and pure functions: the kernel stage and the checks both import it. A check's module
declares the rest of it (harness/checks/registry.py); this row is the part the kernel stage
reads while it plans a build, before any check exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Needs:
    kconfig: dict[str, str] = field(default_factory=dict)  # as .config says it (TEST_LKM=m)
    min_clang: int | None = None  # the first clang that can build what kconfig asks for
    feature: str = ""  # what min_clang is about, for the reason ("kCFI")
    build_dir: bool = False  # our M= modules are built against the kernel's O= directory
    arches: tuple[str, ...] = ()  # the archs it applies to (empty: all)
    lto: tuple[str, ...] = ()  # the LTO modes it applies to (empty: all)


MODULES = {"MODULES": "y", "MODULE_UNLOAD": "y"}

# Every check of harness/checks, by name, in the order the checks run and are reported:
# dmesg_clean last, judged after what all others did (a run's last checks on the guest, those
# that crash it on purpose, come after it: harness/checks/registry.py's run_checks). A check
# that needs nothing says so: Needs(). tests/unit/test_needs.py holds this table and the
# registered checks to each other.
CHECKS: dict[str, Needs] = {
    "proc_version": Needs(),
    "lto_config": Needs({"IKCONFIG": "y", "IKCONFIG_PROC": "y"}),
    # every vCPU the guest was given online, and work run on each (the seed's kernel is SMP)
    "smp": Needs({"SMP": "y"}),
    "test_module": Needs({**MODULES, "RUNTIME_TESTING_MENU": "y", "TEST_LKM": "m"}),
    "lto_elf_note": Needs(),
    "llvm_symbols": Needs({**MODULES, "KALLSYMS": "y", "KALLSYMS_ALL": "y", "KPROBES": "y"}),
    "build_outputs": Needs(),
    "symvers_crcs": Needs({**MODULES, "MODVERSIONS": "y"}),
    "probe_modules": Needs(dict(MODULES), build_dir=True),
    "modversions": Needs({**MODULES, "MODVERSIONS": "y"}),
    # dynamic ftrace; with a build directory our probe module's function is traced too
    "ftrace": Needs({**MODULES, "FTRACE": "y", "FUNCTION_TRACER": "y", "DYNAMIC_FTRACE": "y"}),
    "vdso": Needs(),
    "kvm_nvhe": Needs({"VIRTUALIZATION": "y", "KVM": "y"}, arches=("arm64",)),
    "pci_fixups": Needs({"PCI": "y"}, arches=("x86_64",)),
    # kCFI (CONFIG_CFI_CLANG since Linux 6.1) needs clang's -fsanitize=kcfi: clang 16
    "cfi": Needs({"DEBUG_FS": "y", "LKDTM": "y", "CFI_CLANG": "y"}, min_clang=16,
                 feature="kCFI"),
    "lkdtm_rodata": Needs({"DEBUG_FS": "y", "LKDTM": "y"}),
    "efi_stub": Needs({"EFI": "y"}, arches=("arm64",)),
    "dmesg_clean": Needs(),
}


def toolchain_gap(needs: Needs, clang_major: int | None, clang: str) -> str | None:
    """Why a kernel built by this clang cannot have what `needs` asks for, or None."""
    if needs.min_clang is not None and clang_major is not None and \
            clang_major < needs.min_clang:
        return f"{needs.feature} needs clang >= {needs.min_clang}; built with {clang}"
    return None


def scope_gap(needs: Needs, arch: str | None, lto: str | None) -> str | None:
    """Why the check does not apply to a kernel of this arch and LTO mode, or None."""
    if needs.arches and arch is not None and arch not in needs.arches:
        return f"applies to {', '.join(needs.arches)} only, not {arch}"
    if needs.lto and lto is not None and lto not in needs.lto:
        return f"applies to LTO {', '.join(needs.lto)} only, not {lto}"
    return None


def build_options(clang_major: int, clang: str, checks: Iterable[str] | None = None, *,
                  arch: str | None = None, lto: str | None = None,
                  defined: Set[str] | None = None, version: str = ""
                  ) -> tuple[dict[str, str], dict[str, str]]:
    """The Kconfig options a build asks for so that `checks` (all by default) can run, and the
    checks left out with the reason: they do not apply to this arch or LTO mode, their options
    would need a newer toolchain, or the kernel source (`defined`: its Kconfig symbols) does
    not have them."""
    options: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for name in checks if checks is not None else CHECKS:
        needs = CHECKS.get(name, Needs())
        gap = scope_gap(needs, arch, lto) or toolchain_gap(needs, clang_major, clang)
        missing = [k for k, v in needs.kconfig.items()
                   if defined is not None and v != "n" and k not in defined]
        if gap is None and missing:
            gap = f"Linux {version or 'this source'} does not define " + \
                ", ".join(f"CONFIG_{k}" for k in missing)
        if gap is not None:
            left_out[name] = gap
        else:
            options.update(needs.kconfig)
    return options, left_out


def unmet(name: str, config: Mapping[str, str], clang_major: int | None, clang: str,
          has_build_dir: bool, arch: str | None = None, lto: str | None = None) -> str | None:
    """Why check `name` cannot run on a kernel with this config, toolchain, arch and LTO mode,
    or None."""
    needs = CHECKS.get(name, Needs())
    scope = scope_gap(needs, arch, lto)
    if scope is not None:
        return scope
    missing = {k: v for k, v in needs.kconfig.items() if config.get(k, "n") != v}
    if missing:
        gap = toolchain_gap(needs, clang_major, clang)
        if gap is not None:
            return gap
        shown = ", ".join(f"CONFIG_{k}={v}" for k, v in missing.items())
        return f"needs {shown}, which this kernel's config does not have"
    if needs.build_dir and not has_build_dir:
        return "needs the kernel's build directory (give --kernel its kbuild O= directory)"
    return None
