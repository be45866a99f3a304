"""Static busybox for each guest: the host's for x86_64, Debian's arm64 package for arm64."""

from __future__ import annotations

import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness import cache, elf
from harness.arch import Arch
from harness.errors import InfraError

HOST_BUSYBOX = Path("/bin/busybox")
_HOST_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


def _check(path: Path, arch: Arch, fix: str) -> Path:
    machine, static = elf.machine_and_static(path.read_bytes(), str(path))
    if machine != arch.elf_machine or not static:
        raise InfraError(f"{path} is not a static {arch.name} busybox: {fix}")
    return path


def _download(tmp: Path, arch: Arch) -> None:
    fix = (f"run ./setup.sh (it runs dpkg --add-architecture {arch.deb_arch} && apt-get update)")
    with tempfile.TemporaryDirectory() as work:
        got = subprocess.run(["apt-get", "download", f"busybox-static:{arch.deb_arch}"],
                             cwd=work, capture_output=True, text=True)
        debs = list(Path(work).glob("busybox-static_*.deb"))
        if got.returncode != 0 or not debs:
            raise InfraError(f"cannot get busybox-static:{arch.deb_arch} "
                             f"({got.stderr.strip().splitlines()[-1:] or '?'}): {fix}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), f"{work}/x"], check=True)
        tmp.mkdir()
        shutil.copy2(f"{work}/x/bin/busybox", tmp / "busybox")
        (tmp / "package").write_text(debs[0].name + "\n")
    _check(tmp / "busybox", arch, fix)


def busybox_for(arch: Arch) -> Path:
    host_deb = _HOST_DEB_ARCH.get(platform.machine())
    if arch.deb_arch == host_deb:
        fix = "apt-get install busybox-static (or run ./setup.sh)"
        if not HOST_BUSYBOX.exists():
            raise InfraError(f"{HOST_BUSYBOX} is missing: {fix}")
        return _check(HOST_BUSYBOX, arch, fix)
    entry = cache.publish(cache.cache_root() / "busybox" / arch.deb_arch,
                          lambda tmp: _download(tmp, arch))
    return entry / "busybox"
