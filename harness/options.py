"""The kernel options, defined once for `ltoboot` (argparse) and the pytest plugin alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.arch import ARCH_NAMES, get_arch
from harness.errors import UsageError
from harness.kernel.model import BASE_TARGETS, LTO_MODES, BuildSpec

KERNEL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--arch", {"default": None,
                "help": f"comma-separated guest architectures (default: {','.join(ARCH_NAMES)}; "
                        "with --kernel: each image's own)"}),
    ("--lto", {"default": "thin", "choices": tuple(LTO_MODES),
               "help": "LTO mode to build (default: thin)"}),
    ("--kernel-src", {"default": None, "metavar": "PATH",
                      "help": "kernel source tree or tarball (default: Debian's "
                              "linux-source-6.1)"}),
    ("--kernel", {"action": "append", "default": [], "metavar": "PATH|URL",
                   "help": "check a prebuilt kernel instead of building one (repeatable): a kbuild "
                           "O= directory, an image with config/System.map/modules.tar.xz beside "
                           "it, a TuxMake artifact directory or URL, or a JSON/TOML manifest"}),
    ("--llvm", {"default": "19", "metavar": "N",
                "help": "LLVM version suffix, as in LLVM=-19 (default: 19)"}),
    ("--fragment", {"action": "append", "default": [], "metavar": "FILE",
                    "help": "extra Kconfig fragment (repeatable)"}),
    ("--config", {"default": "tinyconfig", "dest": "base_config",
                  "metavar": "tinyconfig|defconfig|FILE",
                  "help": "the base config our fragments and the LTO mode go on top of "
                          "(default: tinyconfig)"}),
    ("--accel", {"default": "auto", "choices": ("auto", "kvm", "tcg"),
                 "help": "accelerator; auto uses KVM only where a probe booted a guest"}),
)


def split_arches(value: str | None) -> list[str]:
    names = [a.strip() for a in (value or ",".join(ARCH_NAMES)).split(",") if a.strip()]
    for a in names:
        get_arch(a)
    if not names:
        raise UsageError("--arch needs at least one architecture")
    return sorted(set(names), key=names.index)


def base_config(value: str) -> str:
    """--config: tinyconfig, defconfig, or a file (as an absolute path)."""
    if value in BASE_TARGETS:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"--config {value}: no such file; give tinyconfig, defconfig or a "
                         "kernel .config")
    return str(path.resolve())


def kernel_specs(arch: str | None, lto: str, llvm: str, kernel_src: str | None,
                 fragments: Sequence[str], prebuilt: Sequence[str],
                 config: str = "tinyconfig") -> list[BuildSpec]:
    """The kernels the options ask for: one build per --arch, or one per --kernel."""
    if not prebuilt:
        base = base_config(config)
        return [BuildSpec(arch=a, lto=lto, llvm=llvm, kernel_src=kernel_src,
                          fragments=tuple(fragments), config=base) for a in split_arches(arch)]
    if kernel_src or fragments or config != "tinyconfig":
        raise UsageError("--kernel takes a prebuilt kernel: drop --kernel-src, --fragment and "
                         "--config")
    arches = split_arches(arch) if arch else None
    if arches is not None and len(arches) != len(prebuilt):
        raise UsageError("with --kernel, give --arch one architecture per --kernel, or leave it "
                         "out (each image says what it is)")
    from harness.kernel import prebuilt as pre  # imports the fetching machinery only when needed

    return [BuildSpec(arch=arches[i] if arches else pre.arch_of(ref), lto=lto, llvm=llvm,
                      prebuilt=ref) for i, ref in enumerate(prebuilt)]
