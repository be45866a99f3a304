"""Small static guest programs (images/tools/*.c, no libc), built by clang for the guest's arch
and cached by source, compiler and arch. They go into the initramfs as /lib/ltoboot/<name>."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.base import cache, proc, resources
from harness.base.arch import get_arch
from harness.base.errors import InfraError
from harness.kernel import toolchain
from harness.kernel.model import Kernel

SOURCES = resources.TOOL_SOURCES
RECIPE = 1
VDSO = "ltoboot_vdso"

# clang's target triple per ltoboot arch
TARGETS = {"x86_64": "x86_64-linux-gnu", "arm64": "aarch64-linux-gnu"}


def compile_argv(llvm: str, arch: str, source: Path, out: Path) -> list[str]:
    """A static, freestanding program: its own _start and system calls, nothing else."""
    sfx = f"-{llvm}" if llvm else ""
    return [f"clang{sfx}", f"--target={TARGETS[get_arch(arch).name]}", "-O2", "-static",
            "-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie", "-fuse-ld=lld",
            f"--ld-path=ld.lld{sfx}", "-Wall", "-Werror", "-o", str(out), str(source)]


def guest_tool(kernel: Kernel, name: str) -> Path:
    """The built program `name` for `kernel`'s arch, with the clang that built the kernel (or
    the unsuffixed one for a prebuilt kernel whose clang is not installed)."""
    source = SOURCES / f"{name}.c"
    try:
        llvm = toolchain.of_kernel(kernel)
    except InfraError:
        llvm = toolchain.detect(toolchain.DEFAULT_LLVM).llvm
    clang = toolchain.detect(llvm).clang_version
    key = cache.content_key({"recipe": RECIPE, "arch": kernel.arch, "clang": clang,
                             "source": hashlib.sha256(source.read_bytes()).hexdigest()})

    def produce(tmp: Path) -> None:
        proc.run(compile_argv(llvm, kernel.arch, source, tmp),
                 what=f"compiling the guest program {name} for {kernel.arch}", error=InfraError)

    return cache.publish(cache.cache_root() / "tools" / f"{name}-{kernel.arch}-{key}", produce)
