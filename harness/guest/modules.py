"""ltoboot's out-of-tree probe modules (images/modules), built with M= against a kernel build."""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from harness.base import cache, elf, resources
from harness.base.arch import get_arch
from harness.base.errors import NotApplicable, UsageError
from harness.base.progress import say
from harness.kernel import kbuild, toolchain
from harness.kernel.model import Kernel

SOURCES = resources.MODULE_SOURCES
GUEST_DIR = "/lib/ltoboot"  # where the initramfs carries them
PROBE, USER, USER_BADCRC = "ltoboot_probe.ko", "ltoboot_user.ko", "ltoboot_user_badcrc.ko"
SHIPPED, SHIPPED_BADCRC = "test_module.ko", "test_module_badcrc.ko"  # for kernels without O=
EXPORTED = "ltoboot_probe_value"  # the symbol ltoboot_user takes from ltoboot_probe
RECIPE = 1


@dataclass(frozen=True)
class ProbeModules:
    dir: Path
    symvers: Path  # Module.symvers of the M= build

    def files(self) -> list[Path]:
        """The modules built; the altered copy is missing when ltoboot_user has no CRC to alter
        (a kernel whose CRCs were lost), which the modversions check reports."""
        return [p for p in (self.dir / n for n in (PROBE, USER, USER_BADCRC)) if p.exists()]


def _sources_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(SOURCES.iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _build(tmp: Path, kernel: Kernel, log: Path) -> None:
    assert kernel.build_dir is not None and kernel.source_tree is not None
    tmp.mkdir()
    src = tmp / "src"
    shutil.copytree(SOURCES, src)
    started = time.monotonic()
    make = kbuild.Kbuild(kernel.source_tree, kernel.build_dir, get_arch(kernel.arch),
                         toolchain.of_kernel(kernel), log, f"probe modules for {kernel.label}")
    make("modules", module_dir=src)
    for name in (PROBE, USER):
        shutil.copy2(src / name, tmp / name)
    shutil.copy2(src / "Module.symvers", tmp / "Module.symvers")
    user = (tmp / USER).read_bytes()
    try:
        (tmp / USER_BADCRC).write_bytes(elf.with_altered_crc(user, EXPORTED))
    except UsageError as e:
        say(f"{kernel.label}: no altered-CRC module: {e}")
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
        raise NotApplicable(f"{kernel.label} has no build directory to build our M= probe "
                            "modules against (give --kernel its kbuild O= directory)")
    (root / "logs").mkdir(exist_ok=True)
    log = root / "logs" / f"modules-{kernel.label}-{key[:12]}.log"
    entry = cache.publish(root / "modules" / f"{kernel.label}-{key}",
                          lambda tmp: _build(tmp, kernel, log))
    return ProbeModules(entry, entry / "Module.symvers")


def shipped(kernel: Kernel) -> list[Path]:
    """The .ko files that came with the kernel (its modules_install tree)."""
    return sorted(kernel.modules.rglob("*.ko")) if kernel.modules is not None else []


def shipped_badcrc(kernel: Kernel) -> tuple[Path, str] | None:
    """For a kernel without a build directory: a copy of its own test_module.ko with the CRC of
    one imported kernel symbol altered, and that symbol; None without test_module.ko."""
    ko = next((p for p in shipped(kernel) if p.name == SHIPPED), None)
    if ko is None:
        return None
    data = ko.read_bytes()
    symbol = next((s for s in elf.module_versions(data) if s != "module_layout"), None)
    if symbol is None:
        return None
    key = cache.content_key({"recipe": RECIPE, "kernel": kernel.key, "symbol": symbol})

    def produce(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / SHIPPED_BADCRC).write_bytes(elf.with_altered_crc(data, symbol))

    entry = cache.publish(cache.cache_root() / "modules" / f"{kernel.label}-shipped-{key}",
                          produce)
    return entry / SHIPPED_BADCRC, symbol
