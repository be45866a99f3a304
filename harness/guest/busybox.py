"""Static busybox for each guest: the host's for x86_64, Debian's arm64 package for arm64."""

from __future__ import annotations

import platform
import shutil
import tempfile
from pathlib import Path

from harness.base import cache, elf, proc
from harness.base.arch import Arch, host_arch
from harness.base.errors import InfraError

HOST_BUSYBOX = Path("/bin/busybox")


def _check(path: Path, arch: Arch, fix: str) -> Path:
    machine, static = elf.machine_and_static(path.read_bytes(), str(path))
    if machine != arch.elf_machine or not static:
        raise InfraError(f"{path} is not a static {arch.name} busybox: {fix}")
    return path


def _download(tmp: Path, arch: Arch) -> None:
    fix = (f"run ./setup.sh (it runs dpkg --add-architecture {arch.deb_arch} && apt-get update)")
    with tempfile.TemporaryDirectory() as work:
        proc.run(["apt-get", "download", f"busybox-static:{arch.deb_arch}"], cwd=Path(work),
                 what=f"getting busybox-static:{arch.deb_arch}", fix=fix)
        debs = list(Path(work).glob("busybox-static_*.deb"))
        if not debs:
            raise InfraError(f"apt-get download gave no busybox-static:{arch.deb_arch}: {fix}")
        proc.run(["dpkg-deb", "-x", str(debs[0]), f"{work}/x"], what=f"unpacking {debs[0].name}",
                 fix="check the free space of /tmp")
        tmp.mkdir()
        shutil.copy2(f"{work}/x/bin/busybox", tmp / "busybox")
        (tmp / "package").write_text(debs[0].name + "\n")
    _check(tmp / "busybox", arch, fix)


def busybox_for(arch: Arch) -> Path:
    host = host_arch(platform.machine())
    if host is not None and arch.deb_arch == host.deb_arch:
        fix = "apt-get install busybox-static (or run ./setup.sh)"
        if not HOST_BUSYBOX.exists():
            raise InfraError(f"{HOST_BUSYBOX} is missing: {fix}")
        return _check(HOST_BUSYBOX, arch, fix)
    entry = cache.publish(cache.cache_root() / "busybox" / arch.deb_arch,
                          lambda tmp: _download(tmp, arch))
    return entry / "busybox"
