"""Prebuilt kernels given with --kernel, made from real builds of ours: every input form, and
one clear error for each bad one, before QEMU starts. (The fetched kernel's checks run in
test_checks.py, parametrised as x86_64-thin-fetched.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.base import cache
from harness.base.arch import get_arch
from harness.base.errors import UsageError
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel import artifacts, kconfig, prebuilt
from harness.kernel.model import BuildSpec, Kernel

pytestmark = pytest.mark.xdist_group("prebuilt")  # its module fixtures once


@pytest.fixture(scope="module")
def built(kernels: Kernels, primary_arch: str) -> Kernel:
    return kernels.get(arch=primary_arch)


@pytest.fixture(scope="module")
def exported(built: Kernel) -> Path:
    return artifacts.export(built)


@pytest.fixture(scope="module")
def server() -> Iterator[artifacts.Server]:
    s = artifacts.Server(cache.cache_root() / "exports")
    yield s
    s.close()


def lto_lines(config_text: str) -> dict[str, str]:
    return {k: v for k, v in kconfig.parse(config_text).items() if "LTO" in k}


def resolve(ref: str, arch: str, lto: str = "thin") -> Kernel:
    return prebuilt.resolve(BuildSpec(arch=arch, lto=lto, prebuilt=ref))


def test_image_alone_uses_its_embedded_config(built: Kernel, exported: Path,
                                              tmp_path: Path) -> None:
    name = next(exported.glob("*Image*")).name
    shutil.copy(exported / name, tmp_path / name)  # no config beside it
    k = resolve(str(tmp_path / name), built.arch)
    assert (k.arch, k.lto, k.release) == (built.arch, "thin", built.release)
    assert lto_lines(k.config.read_text()) == lto_lines(built.config.read_text())
    assert k.modules is None and k.build_dir is None


def test_tuxmake_directory_and_manifests(built: Kernel, exported: Path, tmp_path: Path,
                                         server: artifacts.Server) -> None:
    local = resolve(str(exported), built.arch)
    assert local.system_map is not None and local.modules is not None
    assert list(local.modules.glob(f"lib/modules/{built.release}/kernel/**/test_module.ko"))
    names = {"kernel": next(exported.glob("*Image*")).name, "config": "config",
             "system_map": "System.map", "modules": "modules.tar.xz"}
    parts = {k: {"url": n, "sha256": cache.file_sha256(exported / n)} for k, n in names.items()}
    toml = "".join(f'[{k}]\nurl = "{v["url"]}"\nsha256 = "{v["sha256"]}"\n'
                   for k, v in parts.items())
    # served beside the export; URLs relative to the manifest's
    (exported.parent / "m.toml").write_text(toml.replace('url = "', f'url = "{exported.name}/'))
    fetched = resolve(server.url(exported.parent / "m.toml"), built.arch)
    assert fetched.key == local.key  # same content, same kernel, wherever it came from
    parts["config"]["sha256"] = "0" * 64
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps({k: {**v, "url": server.url(exported / v["url"])}
                               for k, v in parts.items()}))
    with pytest.raises(UsageError, match="expected 0000"):
        resolve(str(bad), built.arch)


def ltoboot_error(*args: str) -> tuple[str, float]:
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "harness.faces.cli", "run", *args],
                       capture_output=True, text=True, env={**os.environ}, timeout=120)
    elapsed = time.monotonic() - started
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "booting" not in r.stderr  # refused before QEMU
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ltoboot: error: "), r.stderr
    return lines[0], elapsed


def test_bad_inputs_are_one_line_errors(kernels: Kernels, built: Kernel, exported: Path,
                                        tmp_path: Path) -> None:
    image = next(exported.glob("*Image*"))
    other = "arm64" if built.arch == "x86_64" else "x86_64"
    (tmp_path / "notes.txt").write_text("not a kernel\n" * 100)
    none = kernels.get(arch=built.arch, lto="none")
    assert none.build_dir is not None
    cases = {
        "no such file or directory": ["--kernel", str(tmp_path / "missing/bzImage")],
        "not a kernel image": ["--kernel", str(tmp_path / "notes.txt")],
        f"an {built.arch} kernel image, but --arch {other}": ["--kernel", str(image),
                                                               "--arch", other],
        "its config has no LTO (CONFIG_LTO_NONE=y)": ["--kernel", str(none.build_dir)],
        "unsupported URL scheme 'ftp'": ["--kernel", "ftp://example.org/bzImage"],
    }
    for says, args in cases.items():
        line, elapsed = ltoboot_error(*args)
        assert says in line, line
        assert elapsed < 30, (line, elapsed)
    # the non-LTO kernel is accepted when asked for
    assert resolve(str(none.build_dir), built.arch, lto="none").lto == "none"


def test_build_directory_without_installed_modules(built: Kernel, tmp_path: Path) -> None:
    """A developer's O= directory after plain `make`: modules come from modules.order."""
    assert built.build_dir is not None
    out = tmp_path / "o"
    out.mkdir()
    # every module modules.order lists (the SMP x86_64 kernel has x86_pkg_temp_thermal too)
    kos = [str(Path(m).with_suffix(".ko"))
           for m in (built.build_dir / "modules.order").read_text().split()]
    assert "lib/test_module.ko" in kos
    for name in (".config", "System.map", "modules.order", "modules.builtin",
                 "modules.builtin.modinfo", "include/config/kernel.release",
                 get_arch(built.arch).image, *kos):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(built.build_dir / name, out / name)
    k = resolve(str(out), built.arch)
    assert k.modules is not None and k.build_dir == out
    installed = k.modules / "lib" / "modules" / built.release
    assert (installed / "kernel/lib/test_module.ko").is_file()
    assert "test_module.ko" in (installed / "modules.dep").read_text()
