"""Each external tool ltoboot runs, made to fail by a shim first on PATH: the user sees one line
(or the report, for a build) with the right exit status, never a traceback.

Each case starts from an empty cache and inputs that reach the tool in seconds (a fake source
tree, synthetic kernel images): nothing is built or booted.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.synthetic import RELEASE, arm64, fake_tree, x86

THIN = "CONFIG_LTO_CLANG=y\nCONFIG_LTO_CLANG_THIN=y\n# CONFIG_LTO_NONE is not set\n"


def shim(bin_dir: Path, tool: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / tool
    path.write_text(f"#!/bin/sh\necho \"{tool}: failing on purpose (shim)\" >&2\nexit 3\n")
    path.chmod(0o755)


def ltoboot(tmp: Path, failing: str, *args: str) -> subprocess.CompletedProcess[str]:
    shim(tmp / "bin", failing)
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}",
           "LTOBOOT_CACHE": str(tmp / "cache"), "HOME": str(tmp)}
    return subprocess.run([sys.executable, "-m", "harness.faces.cli", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)


def prebuilt(tmp: Path, arch: str, modules: bool = False) -> Path:
    """A directory with a synthetic image and its config, as TuxMake lays it out."""
    d = tmp / f"k-{arch}"
    d.mkdir()
    name = {"x86_64": "bzImage", "arm64": "Image"}[arch]
    (d / name).write_bytes(x86() if arch == "x86_64" else arm64())
    (d / "config").write_text(THIN)
    if modules:  # a module tree without modules.dep: ltoboot runs depmod on it
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:xz") as tar:
            data = b"\x7fELF not really"
            info = tarfile.TarInfo(f"lib/modules/{RELEASE}/kernel/x.ko")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        (d / "modules.tar.xz").write_bytes(buf.getvalue())
    return d / name


def one_clear_line(got: subprocess.CompletedProcess[str], status: int, *words: str) -> None:
    text = got.stdout + got.stderr
    assert "Traceback" not in text, text
    assert got.returncode == status, text
    errors = [line for line in got.stderr.splitlines() if line.startswith("ltoboot: error:")]
    assert len(errors) == 1, got.stderr
    for w in words:
        assert w in errors[0], errors[0]


@pytest.mark.parametrize("tool", ["clang-19", "ld.lld-19"])
def test_toolchain_that_cannot_say_its_version(tmp_path: Path, tool: str) -> None:
    got = ltoboot(tmp_path, tool, "run", "--arch", "x86_64", "--kernel-src", "/nonexistent")
    one_clear_line(got, 2, tool, "--version", "failed (exit 3)", "failing on purpose")


def test_make_that_fails_is_the_build_failing(tmp_path: Path) -> None:
    got = ltoboot(tmp_path, "make", "run", "--arch", "x86_64",
                  "--kernel-src", str(fake_tree(tmp_path / "linux")))
    assert "Traceback" not in got.stdout + got.stderr
    assert got.returncode == 1, got.stdout + got.stderr
    assert "build failed: build x86_64-thin: make tinyconfig failed (exit 3)" in got.stdout
    assert "build log:" in got.stdout


def test_git_that_fails(tmp_path: Path) -> None:
    got = ltoboot(tmp_path, "git", "tested-by", "--arch", "x86_64")
    one_clear_line(got, 2, "git config user.name", "failed (exit 3)")


def test_depmod_that_fails(tmp_path: Path) -> None:
    image = prebuilt(tmp_path, "x86_64", modules=True)
    got = ltoboot(tmp_path, "depmod", "run", "--kernel", str(image))
    one_clear_line(got, 2, "depmod", "failed (exit 3)")


def test_apt_get_that_fails_to_bring_a_guest_busybox(tmp_path: Path) -> None:
    got = ltoboot(tmp_path, "apt-get", "run", "--kernel", str(prebuilt(tmp_path, "arm64")))
    one_clear_line(got, 2, "apt-get download busybox-static:arm64", "failed (exit 3)",
                   "./setup.sh")


def test_qemu_that_fails(tmp_path: Path) -> None:
    got = ltoboot(tmp_path, "qemu-system-x86_64", "run", "--accel", "auto",
                  "--kernel", str(prebuilt(tmp_path, "x86_64")))
    text = got.stdout + got.stderr
    assert "Traceback" not in text, text
    if got.returncode == 2:  # the KVM probe asked QEMU its version first
        one_clear_line(got, 2, "qemu-system-x86_64", "failed (exit 3)")
    else:  # QEMU itself exited at once: the boot failed, as the report says
        assert got.returncode == 1 and "boot failed: exited: QEMU exited (status 3)" in text


def test_tar_that_fails_to_unpack_the_source(tmp_path: Path) -> None:
    tarball = tmp_path / "linux.tar.xz"
    with tarfile.open(tarball, "w:xz") as tar:
        data = gzip.compress(b"")
        info = tarfile.TarInfo("linux/Makefile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    got = ltoboot(tmp_path, "tar", "run", "--arch", "x86_64", "--kernel-src", str(tarball))
    one_clear_line(got, 2, "tar -xf", "failed (exit 3)")


def bad_input(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LTOBOOT_CACHE": str(tmp / "cache"), "HOME": str(tmp)}
    return subprocess.run([sys.executable, "-m", "harness.faces.cli", *args], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_truncated_config_gz_is_bad_input(tmp_path: Path) -> None:
    image = prebuilt(tmp_path, "x86_64")
    (image.parent / "config").unlink()
    (image.parent / "config.gz").write_bytes(gzip.compress(THIN.encode() * 50)[:40])
    one_clear_line(bad_input(tmp_path, "run", "--kernel", str(image)), 2, "config.gz",
                   "does not decompress")


def test_a_kernel_src_file_that_is_no_tarball_is_bad_input(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a kernel\n")
    one_clear_line(bad_input(tmp_path, "run", "--arch", "x86_64", "--kernel-src", str(notes)),
                   2, "unpacking notes.txt", "tar -xf")


@pytest.mark.parametrize(("body", "signal_name"), [
    # the OOM killer ends ld.lld linking vmlinux.o; make reports the recipe Killed
    ("echo '  LD      vmlinux.o'; echo 'make[1]: *** [Makefile:1234: vmlinux_o] Killed' >&2;"
     " exit 2", "SIGKILL"),
    ("echo 'clang: error: unable to execute command: Segmentation fault' >&2; "
     "echo 'make[2]: *** [scripts/Makefile.build:250: init/main.o] Error 254' >&2; exit 2",
     "SIGSEGV"),
    ("kill -9 $$", "SIGKILL"),  # make itself
])
def test_a_build_tool_killed_by_a_signal_is_the_machines_not_the_kernels(
        tmp_path: Path, body: str, signal_name: str) -> None:
    """A tool killed from outside (the OOM killer, most often) says nothing about the kernel:
    exit 2 naming the signal and the likely cause, never "build failed" (exit 1), which
    bisect would take for skip and tested-by for a series that does not build."""
    (tmp_path / "bin").mkdir()
    make = tmp_path / "bin" / "make"
    make.write_text(f"#!/bin/sh\n{body}\n")
    make.chmod(0o755)
    got = ltoboot(tmp_path, "true-never-used", "run", "--arch", "x86_64",
                  "--kernel-src", str(fake_tree(tmp_path / "linux")))
    one_clear_line(got, 2, f"died of {signal_name}", "out of memory", "build log:")
    assert "build failed" not in got.stdout
