"""Every command-line option, declared once as data: `ltoboot` (harness/cli_args.py) and the
pytest plugin add them from here; and what they mean for a build (the kernels they ask for)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.arch import ARCH_NAMES, ARCHES, get_arch
from harness.checks import CHECKS
from harness.errors import UsageError
from harness.kernel.model import BASE_TARGETS, LTO_MODES, BuildSpec


@dataclass(frozen=True)
class Option:
    """One command-line option, declared once: `ltoboot`'s commands and the pytest plugin
    add it from here."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any]

    @property
    def flag(self) -> str:
        return self.flags[0]

    def add(self, add_argument: Callable[..., Any]) -> None:
        add_argument(*self.flags, **self.kwargs)


def opt(*flags: str, **kwargs: Any) -> Option:
    """An option as argparse and pytest's addoption take it: flags, then their keywords."""
    return Option(flags, kwargs)


ARCH = opt("--arch", default=None,
           help=f"comma-separated guest architectures (default: {','.join(ARCH_NAMES)}; "
                "with --kernel: each image's own)")
LTO = opt("--lto", default="thin", choices=tuple(LTO_MODES),
          help="LTO mode to build (default: thin)")
KERNEL_SRC = opt("--kernel-src", default=None, metavar="PATH",
                 help="kernel source tree or tarball (default: Debian's linux-source-6.1)")
KERNEL = opt("--kernel", action="append", default=[], metavar="PATH|URL",
             help="check a prebuilt kernel instead of building one (repeatable): a kbuild O= "
                  "directory, an image with config/System.map/modules.tar.xz beside it, a "
                  "TuxMake artifact directory or URL, or a JSON/TOML manifest")
LLVM = opt("--llvm", default="19", metavar="N",
           help="LLVM version suffix, as in LLVM=-19 (default: 19)")
FRAGMENT = opt("--fragment", action="append", default=[], metavar="FILE",
               help="extra Kconfig fragment (repeatable)")
CONFIG = opt("--config", default="tinyconfig", dest="base_config",
             metavar="tinyconfig|defconfig|FILE",
             help="the base config our fragments and the LTO mode go on top of "
                  "(default: tinyconfig)")
ACCEL = opt("--accel", default="auto", choices=("auto", "kvm", "tcg"),
            help="accelerator; auto uses KVM only where a probe booted a guest")
CHECK = opt("--check", action="append", default=[], metavar="NAME",
            help=f"run only these checks (repeatable; known: {', '.join(CHECKS)})")
JUNIT = opt("--junit", metavar="FILE", help="also write the verdicts as JUnit XML")
KCIDB = opt("--kcidb", metavar="FILE",
            help="also write the results as a KCIDB v5.3 document (KernelCI's format), "
                 "validated with KernelCI's schema")

# what every command that builds, boots and checks kernels takes (and pytest, but --check)
KERNEL_OPTIONS: tuple[Option, ...] = (ARCH, LTO, KERNEL_SRC, KERNEL, LLVM, FRAGMENT, CONFIG,
                                      ACCEL)
# the matrix takes lists where the others take one value; the rest is the same option
MATRIX_OPTIONS: tuple[Option, ...] = (
    opt("--kernel-src", action="append", default=[], metavar="PATH",
        help="kernel source trees or tarballs, repeatable (default: Debian's 6.1)"),
    opt("--llvm", default="19", metavar="N,N", help="clang versions (default: 19)"),
    opt("--arch", default=None, metavar="ARCH,ARCH", help="architectures (default: all)"),
    opt("--lto", default="thin", metavar="MODE,MODE",
        help="LTO modes: thin, full, none (default: thin)"),
    CONFIG, ACCEL, CHECK,
    opt("--json", metavar="FILE", help="also write the cells as JSON"),
    KCIDB,
)


def spec_argv(spec: BuildSpec) -> list[str]:
    """The options that give `spec` back: what a bisect step or a child run is told. Every
    field of BuildSpec but `prebuilt` (a bisect builds) is here: tests/unit/test_cli.py holds
    the round trip spec -> argv -> spec."""
    if spec.prebuilt:
        raise ValueError("a prebuilt kernel is not rebuilt from options")
    argv = ["--arch", spec.arch, "--lto", spec.lto, "--llvm", spec.llvm, "--config", spec.config]
    if spec.kernel_src is not None:
        argv += ["--kernel-src", spec.kernel_src]
    for f in spec.fragments:
        argv += ["--fragment", f]
    return argv


def minutes(flag: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} {value}: give a number of minutes above 0")
    return value


def split_arches(value: str | None) -> list[str]:
    names = [a.strip() for a in (value or ",".join(ARCH_NAMES)).split(",") if a.strip()]
    for a in names:
        get_arch(a)
    if not names:
        raise UsageError("--arch needs at least one architecture")
    return sorted(set(names), key=names.index)


def base_config(value: str, arches: Sequence[str] = ()) -> str:
    """--config: tinyconfig, defconfig, or a file (as an absolute path); a .config made for
    another architecture than one of `arches` is refused, naming both."""
    if value in BASE_TARGETS:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"--config {value}: no such file; give tinyconfig, defconfig or a "
                         "kernel .config")
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise UsageError(f"--config {value}: cannot read it ({e.strerror})") from None
    made_for = [a.name for a in ARCHES.values()
                if re.search(rf"^CONFIG_{a.kconfig_symbol}=y$", text, re.M)]
    for arch in arches:
        if made_for and get_arch(arch).name not in made_for:
            raise UsageError(f"--config {value} is a .config for {made_for[0]} "
                             f"(CONFIG_{get_arch(made_for[0]).kconfig_symbol}=y), not for "
                             f"{arch}: give --arch {made_for[0]}, or a .config of {arch}")
    return str(path.resolve())


def kernel_specs(arch: str | None, lto: str, llvm: str, kernel_src: str | None,
                 fragments: Sequence[str], prebuilt: Sequence[str],
                 config: str = "tinyconfig") -> list[BuildSpec]:
    """The kernels the options ask for: one build per --arch, or one per --kernel."""
    if not prebuilt:
        base = base_config(config, split_arches(arch))
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
