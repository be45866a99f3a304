"""Synthetic kernel images: just the header bytes that say what a kernel is, for tests that
must not wait for a build (image parsing, bad-input and tool-failure paths)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.base.arch import ARCHES

RELEASE = "6.1.192"  # what the synthetic images say they are; no real source is compared with it


def x86(xloadflags: int = 1, payload: bytes = b"") -> bytes:
    a = ARCHES["x86_64"]
    assert a.image_flag is not None and a.image_version_ptr_at is not None
    data = bytearray(0x1000)
    data[a.image_magic_at:a.image_magic_at + 4] = a.image_magic
    data[a.image_flag[0]] = xloadflags
    data[a.image_version_ptr_at:a.image_version_ptr_at + 2] = (0x300).to_bytes(2, "little")
    version = f"{RELEASE} (ltoboot@ltoboot) #1".encode()
    data[0x500:0x500 + len(version) + 4] = version + bytes(4)
    return bytes(data) + payload


def arm64(payload: bytes = b"") -> bytes:
    a = ARCHES["arm64"]
    data = bytearray(0x100)
    data[a.image_magic_at:a.image_magic_at + 4] = a.image_magic
    return bytes(data) + f"Linux version {RELEASE} (ltoboot@ltoboot) (clang)".encode() + payload


def kconfig_defining_everything() -> str:
    """A Kconfig file that defines every symbol an ltoboot build may ask for, on any arch and
    LTO mode: a fake tree passes the kernel-source check and fails where the test wants."""
    from harness.kernel import kconfig
    from harness.kernel.model import LTO_MODES

    symbols: set[str] = set()
    for arch in ARCHES.values():
        for lto in LTO_MODES:
            symbols |= set(kconfig.wanted_options(arch.fragment, lto,
                                                  base_fragment=arch.tinyconfig_fragment))
    return "".join(f"config {s}\n\tbool\n" for s in sorted(symbols))


def fake_tree(path: Path, git: bool = False) -> Path:
    """A "kernel tree" with a top Makefile and a Kconfig, nothing to build (optionally a git
    repository of four commits)."""
    path.mkdir()
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (path / "Kconfig").write_text(kconfig_defining_everything())
    if git:
        def g(*args: str) -> None:
            subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)
        g("init", "-q", "-b", "main")
        g("config", "user.email", "t@example.org")
        g("config", "user.name", "T")
        for i in range(4):
            (path / "NOTES").write_text(f"{i}\n")
            g("add", "-A")
            g("commit", "-q", "-m", f"c{i}")
    return path


GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def git(repo: Path, *args: str) -> str:
    """git in a test's own repository, with an identity of its own."""
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **GIT_ENV}).stdout.strip()


def kernel_repo(r: Path) -> Path:
    """The smallest tree ltoboot takes for a kernel's (a Makefile that says its version, a
    Kconfig, init/main.c), a git repository with one commit."""
    (r / "init").mkdir(parents=True)
    (r / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (r / "Kconfig").write_text("")
    (r / "init" / "main.c").write_text("int main;\n")
    git(r, "init", "-q")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    return r
