"""Every command-line option, declared once as data: `ltoboot` (harness/faces/cli_args.py) and the
pytest plugin add them from here; and what they mean for a build (the kernels they ask for)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.base import resources
from harness.base.arch import ARCH_NAMES, ARCHES, get_arch
from harness.base.errors import UsageError
from harness.checks import CHECKS
from harness.kernel import kconfig
from harness.kernel.model import BASE_TARGETS, LTO_MODES, BuildSpec, lto_mode
from harness.reports import documents

# option values by name (Option.dest): vars(args), pytest's config.getoption, a matrix cell's
Values = Mapping[str, Any] | Callable[[str], Any]


def _as_given(value: Any, arch: str) -> Any:
    return value


@dataclass(frozen=True)
class Option:
    """One command-line option, declared once: `ltoboot`'s commands and the pytest plugin
    add it from here. An option with a `field` sets that field of BuildSpec: spec_from reads
    it by name and spec_argv writes it back, so every command, bisect step, matrix cell and
    the pytest plugin take it with nothing more to write."""

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any]
    field: str = ""  # the BuildSpec field it sets ("": none)
    convert: Callable[[Any, str], Any] = _as_given  # its value as that field, for this arch
    prebuilt_too: bool = False  # a --kernel (prebuilt) kernel takes it too; else it is refused

    @property
    def flag(self) -> str:
        return self.flags[0]

    @property
    def dest(self) -> str:
        """Its name in argparse's namespace and for pytest's getoption (the same rule)."""
        return str(self.kwargs.get("dest") or self.flag.lstrip("-").replace("-", "_"))

    def add(self, add_argument: Callable[..., Any]) -> None:
        add_argument(*self.flags, **self.kwargs)

    def argv(self, value: Any) -> list[str]:
        """The options that give a spec's `value` of this field back (as --flag=value, which
        argparse reads right even when the value starts with a dash)."""
        if self.kwargs.get("action") == "append":
            return [f"{self.flag}={v}" for v in value]
        return [] if value is None else [f"{self.flag}={value}"]


def opt(*flags: str, field: str = "", convert: Callable[[Any, str], Any] = _as_given,
        prebuilt_too: bool = False, **kwargs: Any) -> Option:
    """An option as argparse and pytest's addoption take it: flags, then their keywords; with
    `field`, an option of the kernel's (see Option)."""
    return Option(flags, kwargs, field, convert, prebuilt_too)


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
    """--config: tinyconfig, defconfig, or a file (as an absolute path; xz-, gzip- or
    bzip2-compressed or not); a .config made for another architecture than one of `arches` is
    refused, naming both."""
    if value in BASE_TARGETS:
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        many = " (a comma-separated list is for `ltoboot matrix`)" if "," in value else ""
        raise UsageError(f"--config {value}: no such file; give tinyconfig, defconfig or a "
                         f"kernel .config{many}")
    try:
        text = kconfig.read_config(path).decode(errors="replace")
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


def _path(value: str | None, arch: str = "") -> str | None:
    """A path as a spec holds it: absolute, so that a bisect step, which runs in another
    directory, reads the same file."""
    return None if value is None else str(Path(value).expanduser().resolve())


# fragments ltoboot ships (harness/kernel/configs/<name>.config), given by name to --fragment
# when no file of that name is there
SHIPPED_FRAGMENTS = ("virt-only",)


def _fragment(value: str) -> str:
    if value in SHIPPED_FRAGMENTS and not Path(value).is_file():
        return str(resources.KCONFIG_FRAGMENTS / f"{value}.config")
    return str(_path(value))


def _paths(values: Sequence[str], arch: str) -> tuple[str, ...]:
    return tuple(_fragment(v) for v in values)


# The options of the kernel's: each sets a field of BuildSpec (Option.field). A new one is
# declared here and added to KERNEL_OPTIONS; the commands, bisect steps, the matrix and the
# pytest plugin take it from there, and the round trip in tests/unit/test_cli.py checks it.
ARCH = opt("--arch", default=None, field="arch", prebuilt_too=True,
           convert=lambda value, arch: get_arch(arch).name,  # the value lists them; a spec has one
           help=f"comma-separated guest architectures (default: {','.join(ARCH_NAMES)}; "
                "with --kernel: each image's own)")
LTO = opt("--lto", default="thin", choices=tuple(LTO_MODES), field="lto", prebuilt_too=True,
          convert=lambda value, arch: lto_mode(value).name,
          help="LTO mode to build (default: thin)")
KERNEL_SRC = opt("--kernel-src", default=None, metavar="PATH", field="kernel_src",
                 convert=_path,
                 help="kernel source tree or tarball (default: Debian's linux-source-6.1)")
LLVM = opt("--llvm", default="19", metavar="N", field="llvm", prebuilt_too=True,
           help="LLVM version suffix, as in LLVM=-19 (default: 19)")
FRAGMENT = opt("--fragment", action="append", default=[], metavar="FILE", field="fragments",
               convert=_paths, help="extra Kconfig fragment (repeatable); virt-only: ltoboot's "
               "own, arm64's defconfig without its SoC platforms (QEMU's virt needs none)")
CONFIG = opt("--config", default="tinyconfig", dest="base_config",
             metavar="tinyconfig|defconfig|FILE", field="config",
             convert=lambda value, arch: base_config(value, (arch,)),
             help="the base config our fragments and the LTO mode go on top of "
                  "(default: tinyconfig)")

KERNEL = opt("--kernel", action="append", default=[], metavar="PATH|URL",
             help="check a prebuilt kernel instead of building one (repeatable): a kbuild O= "
                  "directory, an image with config/System.map/modules.tar.xz beside it, a "
                  "TuxMake artifact directory or URL, or a JSON/TOML manifest")
ACCEL = opt("--accel", default="auto", choices=("auto", "kvm", "tcg"),
            help="accelerator; auto uses KVM only where a probe booted a guest")
CHECK = opt("--check", action="append", default=[], metavar="NAME",
            help=f"run only these checks (repeatable; known: {', '.join(CHECKS)})")
# --junit, --kcidb, …: the documents every command that checks kernels writes (one record each)
DOCUMENTS: tuple[Option, ...] = tuple(opt(f"--{d.name}", metavar="FILE", help=d.help)
                                      for d in documents.DOCUMENTS)

# what every command that builds, boots and checks kernels takes (and pytest, but --check)
KERNEL_OPTIONS: tuple[Option, ...] = (ARCH, LTO, KERNEL_SRC, KERNEL, LLVM, FRAGMENT, CONFIG,
                                      ACCEL)
SPEC_OPTIONS: tuple[Option, ...] = tuple(o for o in KERNEL_OPTIONS if o.field)
# the matrix's axes take lists where the others take one value (each has the dest of the option
# of the kernel's it lists); every other option of the kernel's is the same option, given to
# every cell
MATRIX_AXES: tuple[Option, ...] = (
    opt("--kernel-src", action="append", default=[], metavar="PATH",
        help="kernel source trees or tarballs, repeatable (default: Debian's 6.1)"),
    opt("--llvm", default="19", metavar="N,N", help="clang versions (default: 19)"),
    opt("--arch", default=None, metavar="ARCH,ARCH", help="architectures (default: all)"),
    opt("--lto", default="thin", metavar="MODE,MODE",
        help="LTO modes: thin, full, none (default: thin)"),
    opt("--config", default="tinyconfig", dest=CONFIG.dest, metavar="CONFIG,CONFIG",
        help="base configs: tinyconfig, defconfig or .config files (a file's path cannot "
             "hold a comma; default: tinyconfig)"),
)
MATRIX_OPTIONS: tuple[Option, ...] = (
    *MATRIX_AXES,
    *(o for o in SPEC_OPTIONS if o.dest not in {a.dest for a in MATRIX_AXES}),
    ACCEL, CHECK,
    opt("--json", metavar="FILE", help="also write the cells as JSON"),
    *DOCUMENTS,
)


def _getter(values: Values) -> Callable[[str], Any]:
    return values.__getitem__ if isinstance(values, Mapping) else values


def spec_from(values: Values, arch: str, **fields: Any) -> BuildSpec:
    """The one way to make a BuildSpec from options: the kernel of `arch` that `values` ask
    for, each option of the kernel's read by its name and converted (paths made absolute,
    --config checked against the arch); `fields` set the rest (prebuilt) or override."""
    get = _getter(values)
    made = {o.field: o.convert(get(o.dest), arch) for o in SPEC_OPTIONS}
    return BuildSpec(**{**made, **fields})


def spec_argv(spec: BuildSpec) -> list[str]:
    """The options that give `spec` back through spec_from: what a bisect step is told.
    `prebuilt` is not among them (a bisect builds); tests/unit/test_cli.py holds the round
    trip spec -> argv -> spec for every option of the kernel's."""
    if spec.prebuilt:
        raise ValueError("a prebuilt kernel is not rebuilt from options")
    return [a for o in SPEC_OPTIONS for a in o.argv(getattr(spec, o.field))]


def _listed(flags: Sequence[str]) -> str:
    return ", ".join(flags[:-1]) + f" and {flags[-1]}" if len(flags) > 1 else flags[0]


def kernel_specs(values: Values) -> list[BuildSpec]:
    """The kernels the options ask for: one build per --arch, or one per --kernel."""
    get = _getter(values)
    prebuilt = get(KERNEL.dest)
    if not prebuilt:
        return [spec_from(get, a) for a in split_arches(get(ARCH.dest))]
    built_only = [o for o in SPEC_OPTIONS if not o.prebuilt_too]
    if any(get(o.dest) not in (None, [], (), o.kwargs.get("default")) for o in built_only):
        raise UsageError("--kernel takes a prebuilt kernel: drop "
                         + _listed([o.flag for o in built_only]))
    arches = split_arches(get(ARCH.dest)) if get(ARCH.dest) else None
    if arches is not None and len(arches) != len(prebuilt):
        raise UsageError("with --kernel, give --arch one architecture per --kernel, or leave it "
                         "out (each image says what it is)")
    from harness.kernel import prebuilt as pre  # imports the fetching machinery only when needed

    specs: dict[tuple[str, str], BuildSpec] = {}  # the same kernel given twice is checked once
    for i, ref in enumerate(prebuilt):
        same = (arches[i] if arches else "", _same_kernel(ref))
        if same not in specs:
            specs[same] = spec_from(get, arches[i] if arches else pre.arch_of(ref), prebuilt=ref)
    return list(specs.values())


def _same_kernel(ref: str) -> str:
    """What --kernel names, however it is spelled: a URL as given, a path as the file."""
    return ref if "://" in ref else str(Path(ref).expanduser().resolve())
