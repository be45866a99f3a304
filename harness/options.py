"""The kernel options, defined once for `ltoboot` (argparse) and the pytest plugin alike."""

from __future__ import annotations

from typing import Any

from harness.arch import ARCH_NAMES

KERNEL_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--arch", {"default": ",".join(ARCH_NAMES),
                "help": f"comma-separated guest architectures (default: {','.join(ARCH_NAMES)})"}),
    ("--lto", {"default": "thin", "choices": ("thin", "full", "none"),
               "help": "LTO mode to build (default: thin)"}),
    ("--kernel-src", {"default": None, "metavar": "PATH",
                      "help": "kernel source tree or tarball (default: Debian's "
                              "linux-source-6.1)"}),
    ("--llvm", {"default": "19", "metavar": "N",
                "help": "LLVM version suffix, as in LLVM=-19 (default: 19)"}),
    ("--fragment", {"action": "append", "default": [], "metavar": "FILE",
                    "help": "extra Kconfig fragment (repeatable)"}),
    ("--accel", {"default": "auto", "choices": ("auto", "kvm", "tcg"),
                 "help": "accelerator; auto uses KVM only where a probe booted a guest"}),
)
