"""ltoboot as a user installs it: the wheel in a scratch venv, run from outside the checkout.

The guest's init, the probe modules' sources and our Kconfig fragments must come from the
installed package's data, not from this checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from harness.faces.pytest_plugin.fixtures import Kernels

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")

pytestmark = [pytest.mark.boot, pytest.mark.xdist_group("install")]  # one wheel


def run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**clean, **env})


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the built wheel installed (not editable), made from Debian's python. Its
    dependencies are the ones setup.sh installed (pip resolving them from PyPI is setup.sh's
    own test, and a minute here): the venv sees our venv's site-packages as a plain path, so
    its .pth files, the editable install of this checkout among them, are not read."""
    base = DEBIAN_PYTHON if DEBIAN_PYTHON.exists() else Path(sys.executable)
    work = tmp_path_factory.mktemp("install")
    built = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                 "-w", str(work / "dist"), str(ROOT)], work)
    assert built.returncode == 0, built.stderr
    wheels = list((work / "dist").glob("ltoboot-*.whl"))
    assert len(wheels) == 1
    venv = work / "venv"
    assert run([str(base), "-m", "venv", "--without-pip", str(venv)], work).returncode == 0
    ours = Path(sysconfig.get_paths()["purelib"])
    (Path(run([str(venv / "bin/python"), "-c", "import sysconfig; print(sysconfig.get_paths()"
               "['purelib'])"], work).stdout.strip()) / "ltoboot-deps.pth").write_text(f"{ours}\n")
    got = run([sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install",
               "-q", "--no-deps", str(wheels[0])], work)
    assert got.returncode == 0, got.stderr
    return venv


def test_the_installed_package_carries_its_data(installed: Path, tmp_path: Path) -> None:
    code = ("import harness, harness.base.resources as r; from harness.kernel import kconfig; "
            "print(harness.__file__); print(r.GUEST_INIT); print(r.MODULE_SOURCES); "
            "print(len(kconfig.wanted_options('x86_64.config', 'thin')))")
    got = run([str(installed / "bin/python"), "-c", code], tmp_path)
    assert got.returncode == 0, got.stderr
    package, init, sources, options = got.stdout.split()
    site = str(installed / "lib")
    assert package.startswith(site) and init.startswith(site) and sources.startswith(site)
    assert Path(init).is_file() and (Path(sources) / "ltoboot_probe.c").is_file()
    assert int(options) > 20


def test_every_command_answers_help(installed: Path, tmp_path: Path) -> None:
    for command in ([], ["run"], ["tested-by"], ["bisect"], ["bisect-step"]):
        got = run([str(installed / "bin/ltoboot"), *command, "--help"], tmp_path)
        assert got.returncode == 0 and "usage: ltoboot" in got.stdout, got.stderr


def test_installed_ltoboot_run_boots_and_checks(installed: Path, tmp_path: Path,
                                                kernels: Kernels, primary_arch: str) -> None:
    kernels.get(arch=primary_arch)  # built once per machine; the installed run finds it cached
    got = run([str(installed / "bin/ltoboot"), "run", "--arch", primary_arch,
               "--check", "proc_version", "--check", "probe_modules"], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "PASS  proc_version" in got.stdout and "PASS  probe_modules" in got.stdout


def test_installed_plugin_collects_from_any_test_tree(installed: Path, tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text(
        "def test_boots(kernel, guest):\n    assert guest.run('true').ok\n")
    got = run([str(installed / "bin/python"), "-m", "pytest", "--collect-only", "-q", "-p",
               "no:cacheprovider", "--arch", "arm64,x86_64"], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "test_mine.py::test_boots[arm64-thin]" in got.stdout
    assert "test_mine.py::test_boots[x86_64-thin]" in got.stdout
