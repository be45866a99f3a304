"""The kernel model every stage shares: what was asked for (BuildSpec), what came of it (Kernel),
and the LTO modes with the one parser that reads a mode from a config.

At the bottom of the kernel stage: the builder, the prebuilt path and everything after them
import this module, and it imports none of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.base.errors import BuildError, UsageError


@dataclass(frozen=True)
class LtoMode:
    name: str  # as given to --lto, in labels and cache keys
    title: str  # what a human calls it
    request: dict[str, str]  # the Kconfig option that selects it
    expect: dict[str, str]  # what the kernel's config says when it was built so


LTO_MODES: dict[str, LtoMode] = {m.name: m for m in (
    LtoMode("thin", "ThinLTO", {"LTO_CLANG_THIN": "y"},
            {"LTO_CLANG": "y", "LTO_CLANG_THIN": "y", "LTO_NONE": "n"}),
    LtoMode("full", "full LTO", {"LTO_CLANG_FULL": "y"},
            {"LTO_CLANG": "y", "LTO_CLANG_FULL": "y", "LTO_NONE": "n"}),
    LtoMode("none", "no LTO", {"LTO_NONE": "y"}, {"LTO_NONE": "y", "LTO_CLANG": "n"}),
)}


def lto_mode(name: str) -> LtoMode:
    try:
        return LTO_MODES[name]
    except KeyError:
        raise UsageError(f"--lto {name}: use one of {', '.join(LTO_MODES)}") from None


def lto_title(name: str) -> str:
    return LTO_MODES[name].title if name in LTO_MODES else name


def lto_of_config(values: Mapping[str, str]) -> str:
    """The LTO mode a parsed config (kconfig.parse) was built with."""
    if values.get("LTO_CLANG_THIN") == "y":
        return "thin"
    if values.get("LTO_CLANG_FULL") == "y" or values.get("LTO_CLANG") == "y":
        return "full"  # LTO_CLANG alone: the kernels before the THIN/FULL choice
    return "none"


# BuildSpec.prebuilt for "our build of this spec, served over HTTP as TuxMake artifacts and
# fetched back" (the pytest plugin's ltoboot_fetched_copy)
SERVED = "served:"
META = "ltoboot-meta.json"  # in a kernel's directory, written last: the Kernel as JSON
MODROOT = "ltoboot-modroot"  # INSTALL_MOD_PATH, in a kernel's directory


BASE_TARGETS = ("tinyconfig", "defconfig")  # --config values that are kbuild targets


@dataclass(frozen=True)
class BuildSpec:
    """What the user asked for; everything else is derived."""

    arch: str
    lto: str = "thin"
    llvm: str = "19"
    kernel_src: str | None = None
    fragments: tuple[str, ...] = ()
    prebuilt: str | None = None  # --kernel: a kernel built elsewhere (kernel/prebuilt.py)
    config: str = "tinyconfig"  # --config: the base, tinyconfig, defconfig or a file's path

    @property
    def label(self) -> str:
        if self.prebuilt == SERVED:
            return f"{self.arch}-{self.lto}-fetched"
        return f"{self.arch}-{self.lto}" + ("-prebuilt" if self.prebuilt else "")


@dataclass(frozen=True)
class Checkout:
    """The source a kernel was built from, as its build's plan found it: what the reports say
    of it (KCIDB's checkout) after the run, without asking git or the tree again."""

    identity: str = ""  # the source's content identity: git:, tree:, tarball:, series:, prebuilt:
    description: str = ""  # what a human calls it ("TREE at DESCRIBE (HEAD)", "NAME (sha256 …)")
    tree: str = ""  # the tree given (the tester's, never the cache's copy), or the tarball's tree
    tarball: str = ""  # the tarball the tree was unpacked from
    version: str = ""  # VERSION.PATCHLEVEL.SUBLEVEL of its top Makefile
    commit: str = ""  # git: HEAD; a series: the commit it was applied onto
    described: str = ""  # `git describe --always --tags` of that commit
    local_changes: str = ""  # git: the tree hash of what HEAD does not hold ("" when clean)
    patchset_hash: str = ""  # git: KCIDB's patchset_hash of the local changes as one patch
    remote_url: str = ""  # git, a series: the URL of the remote the tester's branch follows
    remote_branch: str = ""  # that remote's branch, when the commit is on it ("": not known)
    repository: str = ""  # a series: the tester's repository it was applied from
    prebuilt: str = ""  # a kernel built elsewhere: what the user gave (--kernel)

    @property
    def kind(self) -> str:
        """git, tree, tarball, series or prebuilt ("" when not known)."""
        return self.identity.partition(":")[0]

    @classmethod
    def of_prebuilt(cls, origin: str) -> Checkout:
        return cls(identity=f"prebuilt:{origin}", description=f"a prebuilt kernel: {origin}",
                   prebuilt=origin)


def patchset_hash(digests: Iterable[str]) -> str:
    """KCIDB's patchset_hash of patches given by their sha256 (hex), in order of application:
    the sha256 of each one's hash on a line of its own, as `sha256sum *.patch | cut -c-64 |
    sha256sum` gives it (KernelCI matches checkouts of the same patches by it); "" for none."""
    lines = "".join(f"{d}\n" for d in digests)
    return hashlib.sha256(lines.encode()).hexdigest() if lines else ""


class PlannedBuildError(BuildError):
    """A build ltoboot planned did not build: the BuildError, with the key and checkout its
    plan gave the kernel (the report names the build that failed without planning it again)."""

    def __init__(self, failure: BuildError, key: str, checkout: Checkout) -> None:
        super().__init__(failure.message, failure.log, failure.tail)
        self.key, self.checkout = key, checkout


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
    checkout: Checkout = Checkout()  # metadata from before kernels carried it: not known

    @property
    def label(self) -> str:
        variant = self.extra.get("variant")
        return f"{self.arch}-{self.lto}" + (f"+{variant}" if variant else "") + (
            "-prebuilt" if "prebuilt" in self.extra else "")

    def to_json(self, base: Path) -> str:
        def rel(v: object) -> object:
            # Paths inside the build directory (and its tree, when that is its parent) are
            # stored relative, so a copied build directory describes itself.
            if isinstance(v, Path) and (v.is_relative_to(base) or v == base.parent):
                return os.path.relpath(v, base)
            return str(v) if isinstance(v, Path) else v

        return json.dumps({k: rel(v) for k, v in asdict(self).items()}, indent=2)

    @classmethod
    def from_json(cls, text: str, base: Path) -> Kernel:
        raw = json.loads(text)
        for k in ("image", "config", "system_map", "modules", "build_dir", "source_tree",
                  "build_log"):
            if raw.get(k) is not None:
                raw[k] = Path(os.path.normpath(base / raw[k]))
        raw["checkout"] = Checkout(**raw.get("checkout", {}))
        return cls(**raw)

    def save(self, directory: Path) -> None:
        """Write the kernel's metadata into `directory` (last, so its presence means done)."""
        (directory / META).write_text(self.to_json(directory))

    @classmethod
    def load(cls, directory: Path) -> Kernel:
        return cls.from_json((directory / META).read_text(), directory)
