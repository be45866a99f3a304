"""ltoboot's out-of-tree probe modules (images/modules), built with M= against a kernel build."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness import cache, elf, toolchain
from harness.arch import get_arch
from harness.build import Kernel
from harness.errors import BuildError, UsageError
from harness.progress import say

SOURCES = Path(__file__).resolve().parent.parent / "images" / "modules"
GUEST_DIR = "/lib/ltoboot"  # where the initramfs carries them
PROBE, USER, USER_BADCRC = "ltoboot_probe.ko", "ltoboot_user.ko", "ltoboot_user_badcrc.ko"
EXPORTED = "ltoboot_probe_value"  # the symbol ltoboot_user takes from ltoboot_probe
RECIPE = 1


@dataclass(frozen=True)
class ProbeModules:
    dir: Path
    symvers: Path  # Module.symvers of the M= build

    def files(self) -> list[Path]:
        return [self.dir / n for n in (PROBE, USER, USER_BADCRC)]


def _sources_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(SOURCES.iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def make_vars(kernel: Kernel) -> list[str]:
    if kernel.llvm_major is None:
        return ["LLVM=1"]
    return toolchain.detect(str(kernel.llvm_major)).make_vars


def _build(tmp: Path, kernel: Kernel, log: Path) -> None:
    assert kernel.build_dir is not None and kernel.source_tree is not None
    tmp.mkdir()
    src = tmp / "src"
    shutil.copytree(SOURCES, src)
    argv = ["make", "-C", str(kernel.source_tree), f"O={kernel.build_dir}", f"M={src}",
            f"ARCH={get_arch(kernel.arch).kernel_arch}", *make_vars(kernel), "modules"]
    started = time.monotonic()
    with log.open("w") as f:
        f.write(f"$ {' '.join(argv)}\n")
        f.flush()
        rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL).returncode
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BuildError(f"probe modules for {kernel.label} did not build (exit {rc})", log, tail)
    for name in (PROBE, USER):
        shutil.copy2(src / name, tmp / name)
    shutil.copy2(src / "Module.symvers", tmp / "Module.symvers")
    user = (tmp / USER).read_bytes()
    (tmp / USER_BADCRC).write_bytes(elf.with_altered_crc(user, EXPORTED))
    shutil.rmtree(src)
    say(f"built probe modules for {kernel.label} in {time.monotonic() - started:.1f}s")


def probe_modules(kernel: Kernel) -> ProbeModules:
    """The probe modules for `kernel`, built once per kernel per machine."""
    key = cache.content_key({"recipe": RECIPE, "kernel": kernel.key, "src": _sources_hash()})
    root = cache.cache_root()
    done = root / "modules" / f"{kernel.label}-{key}"
    if done.exists():
        return ProbeModules(done, done / "Module.symvers")
    if kernel.build_dir is None or kernel.source_tree is None:
        raise UsageError(f"{kernel.label}: probe modules need the kernel's build directory")
    (root / "logs").mkdir(exist_ok=True)
    log = root / "logs" / f"modules-{kernel.label}-{key[:12]}.log"
    entry = cache.publish(root / "modules" / f"{kernel.label}-{key}",
                          lambda tmp: _build(tmp, kernel, log))
    return ProbeModules(entry, entry / "Module.symvers")
