"""Host tools: what the build and boot need, which Debian package ships each, and versions.
The whole list of Debian packages a host needs is harness/kernel/host_packages.py."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.base import proc
from harness.base.errors import InfraError, UsageError
from harness.kernel.model import Kernel

DEFAULT_LLVM = "19"

# (command or header path, Debian package)
BUILD_TOOLS: tuple[tuple[str, str], ...] = (
    ("make", "make"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("perl", "perl"),
    ("depmod", "kmod"),
    ("/usr/include/gelf.h", "libelf-dev"),
    ("/usr/include/openssl/ssl.h", "libssl-dev"),
)


def _present(tool: str) -> bool:
    return Path(tool).exists() if tool.startswith("/") else shutil.which(tool) is not None


def require(tools: Iterable[tuple[str, str]]) -> None:
    """Fail before anything runs, naming the Debian packages that provide what is missing."""
    missing = [(t, p) for t, p in tools if not _present(t)]
    if missing:
        names = ", ".join(t for t, _ in missing)
        pkgs = " ".join(sorted({p for _, p in missing}))
        raise InfraError(f"missing {names}: run ./setup.sh or apt-get install {pkgs}")


# What an option set to y makes the build run beyond BUILD_TOOLS (a distribution's config
# sets these; of ltoboot's own, KERNEL_LZ4): option -> (tool, Debian package). Kconfig keeps them
# without the tool, and the build fails at its end.
OPTION_TOOLS: dict[str, tuple[str, str]] = {
    "DEBUG_INFO_BTF": ("pahole", "pahole"),  # scripts/link-vmlinux.sh: vmlinux's BTF
    "MODULE_SIG": ("openssl", "openssl"),  # certs/Makefile: `openssl req` makes the key
    # the boot image's compressor (arch/*/boot/compressed, scripts/Makefile.lib), where it is
    # not one every Debian has (gzip, xz): ltoboot's x86_64 tinyconfig kernels take LZ4
    "KERNEL_LZ4": ("lz4", "lz4"),
    "KERNEL_ZSTD": ("zstd", "zstd"),
    "KERNEL_LZO": ("lzop", "lzop"),
    "KERNEL_BZIP2": ("bzip2", "bzip2"),
    "MODULE_COMPRESS_ZSTD": ("zstd", "zstd"),  # scripts/Makefile.modinst: at modules_install
}


def missing_for(config: Mapping[str, str]) -> dict[str, str]:
    """The options `config` sets to y whose tool this machine has not got: option -> tool."""
    return {s: tool for s, (tool, _) in OPTION_TOOLS.items()
            if config.get(s) == "y" and not _present(tool)}


def require_for(config: Mapping[str, str]) -> None:
    """Fail before the compile when `config` needs a tool this machine has not got."""
    missing = [(s, *OPTION_TOOLS[s]) for s in OPTION_TOOLS
               if config.get(s) == "y" and not _present(OPTION_TOOLS[s][0])]
    if missing:
        raise InfraError("missing " + ", ".join(f"{tool} (CONFIG_{s}=y needs it)"
                                                for s, tool, _ in missing)
                         + ": run ./setup.sh or apt-get install "
                         + " ".join(sorted({pkg for _, _, pkg in missing})))


@dataclass(frozen=True)
class Toolchain:
    llvm: str  # version suffix as in LLVM=-19; "" means unsuffixed clang/ld.lld
    clang_version: str  # first line of `clang --version`
    lld_version: str  # first line of `ld.lld --version`
    major: int


def llvm_tools(llvm: str) -> list[tuple[str, str]]:
    sfx = f"-{llvm}" if llvm else ""
    return [
        (f"clang{sfx}", f"clang{sfx}"),
        (f"ld.lld{sfx}", f"lld{sfx}"),
        (f"llvm-ar{sfx}", f"llvm{sfx}"),
        (f"llvm-nm{sfx}", f"llvm{sfx}"),
        (f"llvm-objcopy{sfx}", f"llvm{sfx}"),
        (f"llvm-readelf{sfx}", f"llvm{sfx}"),
    ]


def parse_major(version_line: str) -> int:
    m = re.search(r"version (\d+)\.", version_line) or re.search(r"LLD (\d+)\.", version_line)
    if not m:
        raise InfraError(f"cannot read a version from {version_line!r}")
    return int(m.group(1))


@cache
def detect(llvm: str) -> Toolchain:
    if llvm and not re.fullmatch(r"\d+", llvm):
        raise UsageError(f"--llvm takes a version number such as 19, not {llvm!r}")
    require(llvm_tools(llvm))
    sfx = f"-{llvm}" if llvm else ""

    def first_line(*argv: str) -> str:
        out = proc.run(argv, what="asking the toolchain its version",
                       env=make_env()).splitlines()
        if not out:
            raise InfraError(f"{argv[0]} --version printed nothing: reinstall it")
        return out[0].strip()

    clang = first_line(f"clang{sfx}", "--version")
    lld = first_line(f"ld.lld{sfx}", "--version")
    return Toolchain(llvm=llvm, clang_version=clang, lld_version=lld, major=parse_major(clang))


# What of ltoboot's environment make sees. make takes every variable as one of its own, and
# kbuild reads many that no key has: KCFLAGS into every object, LOCALVERSION into the release,
# KCONFIG_CONFIG, CROSS_COMPILE, LLVM_IAS, USERCFLAGS... So only these pass: where the tools
# are and what they need to run (a toolchain under a prefix, libclang for bindgen), rustup's
# (init/Kconfig asks rustc, and the key has what it answers), git's configuration (kbuild's
# setlocalversion: `git -c safe.directory=...` comes as GIT_CONFIG_PARAMETERS), a proxy for
# what downloads, a home, a temporary directory, the locale, and what ltoboot sets itself.
MAKE_ENV = ("PATH", "HOME", "TMPDIR", "LANG", "LANGUAGE", "LD_LIBRARY_PATH", "LIBCLANG_PATH",
            "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "CARGO_HOME", "XDG_CONFIG_HOME",
            "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM",
            "GIT_CONFIG_NOSYSTEM", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY",
            "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "all_proxy")
_MAKE_ENV_PREFIXES = ("LC_", "GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_")


def make_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a make, and of what asks the machine's tools what Kconfig would
    (the toolchain's versions, pahole's, rustc's)."""
    env = {k: v for k, v in os.environ.items()
           if k in MAKE_ENV or k.startswith(_MAKE_ENV_PREFIXES)}
    return {**env, **(extra or {})}


VERSION_SECONDS = 300.0  # a tool's time to say its version (rustup may install a toolchain)


@cache
def host_inputs(reads_rustc: bool = False, where: Path | None = None) -> dict[str, str]:
    """What else of this machine Kconfig reads into a build's .config, by tool: pahole's
    version (CONFIG_PAHOLE_VERSION; and BTF, when a config keeps it); rustc's when the tree's
    Kconfig reads it whatever the config (`reads_rustc`: CONFIG_RUSTC_VERSION, from 6.12) or
    bindgen is there too (RUST_IS_AVAILABLE needs both), and then bindgen's. A key gets them,
    so a build made before one was installed or updated is not served after it: empty on a
    machine with none, which keeps the keys of kernels built without them. Asked as make asks
    them: in `where` (the cache, where every build directory is: rustup picks a toolchain by
    directory), with make's environment. A tool that does not run is keyed as such (Kconfig
    then sees no version); one that does not answer in VERSION_SECONDS is an InfraError, not
    a key that says what Kconfig would not."""
    env = make_env()
    search = env.get("PATH")  # None: the default path, as make's shell has
    with_bindgen = shutil.which("bindgen", path=search) is not None
    tools = ["pahole"] + (["rustc"] if reads_rustc or with_bindgen else []) + \
        (["bindgen"] if with_bindgen else [])
    found: dict[str, str] = {}
    for tool in tools:
        if shutil.which(tool, path=search) is None:
            continue
        try:
            out = proc.run([tool, "--version"], what=f"asking {tool} its version", env=env,
                           cwd=where, ok=range(256), timeout=VERSION_SECONDS).strip()
        except InfraError as e:
            if "did not end" in str(e):
                raise
            out = f"(does not run: {e})"
        found[tool] = out.splitlines()[0] if out else "(no version)"
    return found


_RUSTC_VERSION = re.compile(r"^config RUSTC_VERSION\s*$", re.MULTILINE)


def kconfig_reads_rustc(tree: Path) -> bool:
    """Whether the tree's Kconfig asks rustc its version for every config, not only when Rust
    is available: 6.12's scripts/Kconfig.include (rustc-version), or an init/Kconfig with
    RUSTC_VERSION (as during 6.12's merge window). 6.1's has only RUSTC_VERSION_TEXT, which
    depends on RUST."""
    def text(*parts: str) -> str:
        try:
            return tree.joinpath(*parts).read_text(errors="replace")
        except OSError:
            return ""

    return "$(RUSTC)" in text("scripts", "Kconfig.include") or \
        bool(_RUSTC_VERSION.search(text("init", "Kconfig")))


def of_kernel(kernel: Kernel) -> str:
    """The LLVM suffix to build against `kernel` with (M= modules, variants): its own clang."""
    if kernel.llvm_major is None:
        require(llvm_tools(""))
        return ""
    return detect(str(kernel.llvm_major)).llvm
