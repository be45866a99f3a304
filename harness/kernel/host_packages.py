"""The Debian packages a host needs for ltoboot and its tests: what `./setup.sh` installs.

setup.sh asks this module with Debian's own python3, before any venv exists (it needs nothing
beyond the standard library):

    python3 -m harness.kernel.host_packages packages [LLVM]  # every package, QEMU, clang
    python3 -m harness.kernel.host_packages foreign-arches    # the guests' Debian architectures
"""

from __future__ import annotations

import platform
import sys

from harness.base.arch import ARCHES
from harness.kernel.toolchain import DEFAULT_LLVM, llvm_tools

DEFAULT_SOURCE_PACKAGE = "linux-source-6.1"  # Debian's package of the embedded default kernel

BASE_PACKAGES = ("busybox-static", "flex", "bison", "bc", "libelf-dev", "libssl-dev", "cpio",
                 "kmod", "make", "libc6-dev", "xz-utils", "git", "perl", "ccache",
                 # what a distribution's config makes kbuild run (toolchain.OPTION_TOOLS):
                 # openssl for the module signing key kbuild generates. Not pahole: installed,
                 # it would change every build's .config (CONFIG_PAHOLE_VERSION) under the
                 # keys of kernels cached without it; a base config's BTF is cleared instead
                 "openssl",
                 # the compressor of the x86_64 default kernel's image (KERNEL_LZ4; zstd: of
                 # Debian's 6.12 configs; lzop, bzip2: what a tester's may ask for), and what
                 # reads the config a prebuilt image so compressed carries (image.py)
                 "lz4", "zstd", "lzop", "bzip2")
# Debian's own configs of the default kernel, /usr/src/linux-config-6.1/config.*.xz, for
# `ltoboot run --config` (docs/run.md, "A distribution's config"): 1.4 MB
DISTRO_CONFIG_PACKAGES = (DEFAULT_SOURCE_PACKAGE.replace("linux-source-", "linux-config-"),)

# What the test suite checks beyond the default (tests/test_support_matrix.py): Debian's other
# kernel source and Debian 12's default clang, the oldest of the matrix.
TEST_SOURCE_PACKAGES = ("linux-source-6.12",)
TEST_LLVM = ("14",)
# `ltoboot lava run` and its tests (tests/test_lava.py): LAVA's dispatcher, lava-run, with the
# schema its server checks jobs against (lava_common)
LAVA_PACKAGES = ("lava-dispatcher",)


def debian_packages(llvm: str = DEFAULT_LLVM) -> list[str]:
    """Every Debian package ltoboot and its tests need on a host, QEMU for each arch of the
    table included."""
    qemu = sorted({a.qemu_package for a in ARCHES.values()}
                  | {a.efi_firmware_package for a in ARCHES.values() if a.efi_firmware_package})
    tools = sorted({pkg for v in (llvm, *TEST_LLVM) for _, pkg in llvm_tools(v)})
    return [*qemu, *tools, DEFAULT_SOURCE_PACKAGE, *TEST_SOURCE_PACKAGES, *BASE_PACKAGES,
            *DISTRO_CONFIG_PACKAGES, *LAVA_PACKAGES]


def foreign_deb_arches(host_machine: str) -> list[str]:
    """Debian architectures whose packages we download for guests (their static busybox)."""
    return sorted({a.deb_arch for a in ARCHES.values() if a.kvm_host != host_machine})


if __name__ == "__main__":  # used by setup.sh, with Debian's python3 before any venv exists
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "packages":
        print(" ".join(debian_packages(sys.argv[2] if len(sys.argv) > 2 else DEFAULT_LLVM)))
    elif what == "foreign-arches":
        print(" ".join(foreign_deb_arches(platform.machine())))
    else:
        sys.exit("usage: python3 -m harness.kernel.host_packages packages [LLVM] | foreign-arches")
