"""What of the machine besides clang and lld Kconfig reads into a .config (pahole, rustc and
bindgen): part of a build's key when present, so a kernel cached before one was installed is
not served after it; absent, the keys stay those of the kernels already built."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.base import proc
from harness.base.arch import ARCHES
from harness.base.errors import InfraError, UsageError
from harness.kernel import build, kbuild, toolchain
from harness.kernel.model import BuildSpec
from tests.synthetic import fake_tree


@pytest.fixture()
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:/usr/bin:/bin")
    toolchain.host_inputs.cache_clear()
    yield d
    toolchain.host_inputs.cache_clear()


def tool(bin_dir: Path, name: str, version: str) -> None:
    f = bin_dir / name
    f.write_text(f"#!/bin/sh\necho '{version}'\n")
    f.chmod(0o755)


def test_what_kconfig_reads_of_the_machine(bin_dir: Path) -> None:
    assert toolchain.host_inputs() == {}
    tool(bin_dir, "pahole", "v1.24")
    tool(bin_dir, "rustc", "rustc 1.62.0")  # without bindgen, Rust is not available to kbuild
    toolchain.host_inputs.cache_clear()
    assert toolchain.host_inputs() == {"pahole": "v1.24"}
    # a tree whose Kconfig asks rustc its version for every config (6.12's)
    assert toolchain.host_inputs(reads_rustc=True) == {"pahole": "v1.24",
                                                       "rustc": "rustc 1.62.0"}
    tool(bin_dir, "bindgen", "bindgen 0.56.0")
    toolchain.host_inputs.cache_clear()
    assert toolchain.host_inputs() == {"pahole": "v1.24", "rustc": "rustc 1.62.0",
                                       "bindgen": "bindgen 0.56.0"}


def test_which_trees_read_rustc_whatever_the_config(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux")
    assert not toolchain.kconfig_reads_rustc(tree)  # no scripts/Kconfig.include
    (tree / "scripts").mkdir()
    (tree / "scripts" / "Kconfig.include").write_text("cc-info := $(shell,x $(CC))\n")
    assert not toolchain.kconfig_reads_rustc(tree)  # 6.1's
    (tree / "scripts" / "Kconfig.include").write_text(
        "rustc-version := $(shell,$(srctree)/scripts/rustc-version.sh $(RUSTC))\n")
    assert toolchain.kconfig_reads_rustc(tree)  # 6.12's
    (tree / "scripts" / "Kconfig.include").write_text("")
    (tree / "init").mkdir()
    (tree / "init" / "Kconfig").write_text(  # 6.1's: only when Rust is available
        'config RUSTC_VERSION_TEXT\n\tstring\n\tdepends on RUST\n'
        '\tdefault "$(shell,$(RUSTC) --version 2>/dev/null)"\n')
    assert not toolchain.kconfig_reads_rustc(tree)
    (tree / "init" / "Kconfig").write_text(  # 6.12's merge window, before the include file
        "config RUSTC_VERSION\n\tint\n\tdefault $(shell,x $(RUSTC))\n")
    assert toolchain.kconfig_reads_rustc(tree)


def test_tools_are_asked_as_make_asks_them(bin_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """In the tree (rustup picks a toolchain by directory), with make's environment; a tool
    that does not run, or not to its end, is keyed so, not an error (Kconfig copes)."""
    (bin_dir / "rustc").write_text('#!/bin/sh\necho "rustc for $PWD ${KCFLAGS:-clean}"\n')
    (bin_dir / "rustc").chmod(0o755)
    (bin_dir / "pahole").write_text("#!/nonexistent/sh\n")
    (bin_dir / "pahole").chmod(0o755)
    monkeypatch.setenv("KCFLAGS", "-O0")  # what make never sees
    tree = tmp_path / "tree"
    tree.mkdir()
    found = toolchain.host_inputs(True, tree)
    assert found["rustc"] == f"rustc for {tree} clean"
    assert found["pahole"].startswith("(does not run: cannot run pahole")
    (bin_dir / "pahole").write_text("#!/bin/sh\nsleep 100\n")
    monkeypatch.setattr(toolchain, "VERSION_SECONDS", 0.5)
    toolchain.host_inputs.cache_clear()
    # not keyed as what Kconfig, which waits, would not see: an error before any build
    with pytest.raises(InfraError, match=r"pahole --version. did not end in 0\.5 s"):
        toolchain.host_inputs(True, tree)


def test_without_path_the_default_path_is_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    """make's shell searches the default path then: so does the key (pahole in /usr/bin)."""
    monkeypatch.delenv("PATH")
    monkeypatch.setattr(shutil, "which",
                        lambda tool, path=None: "/usr/bin/pahole"
                        if tool == "pahole" and path is None else None)
    monkeypatch.setattr(proc, "run", lambda argv, **kwargs: "v1.24\n")
    toolchain.host_inputs.cache_clear()
    try:
        assert toolchain.host_inputs() == {"pahole": "v1.24"}
    finally:
        toolchain.host_inputs.cache_clear()


def test_a_fragment_with_files_of_this_machine(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A file from outside the tree that a fragment names is keyed by its content; options
    that build in files by names no key follows are refused before anything runs."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    tree = fake_tree(tmp_path / "linux")
    with (tree / "Kconfig").open("a") as f:
        f.write("config SYSTEM_TRUSTED_KEYS\n\tstring\nconfig INITRAMFS_SOURCE\n\tstring\n")
    pem = tmp_path / "certs.pem"
    pem.write_text("ONE\n")
    frag = tmp_path / "mine.config"
    frag.write_text(f'CONFIG_SYSTEM_TRUSTED_KEYS="{pem}"\n')
    spec = BuildSpec("x86_64", kernel_src=str(tree), fragments=(str(frag),))
    one = build.plan(spec).key
    pem.write_text("TWO\n")
    assert build.plan(spec).key != one
    frag.write_text(f'CONFIG_INITRAMFS_SOURCE="{tmp_path}/initramfs"\n')
    with pytest.raises(UsageError, match=r"--fragment sets CONFIG_INITRAMFS_SOURCE: .*leave it "
                                         r"out"):
        build.plan(spec)


def test_make_sees_none_of_the_variables_kbuild_would_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "bin"
    d.mkdir()
    seen = tmp_path / "env"
    (d / "make").write_text(f"#!/bin/sh\nenv > {seen}\n")
    (d / "make").chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}:/usr/bin:/bin")
    for name in ("KCFLAGS", "LOCALVERSION", "KCONFIG_CONFIG", "CROSS_COMPILE", "LLVM_IAS",
                 "MAKEFLAGS", "KBUILD_BUILD_TIMESTAMP"):
        monkeypatch.setenv(name, "x")
    # what the tools need to run: a toolchain's libraries, `git -c safe.directory=...`
    kept = {"LC_ALL": "C", "LD_LIBRARY_PATH": "/opt/llvm/lib",
            "GIT_CONFIG_PARAMETERS": "'safe.directory'='/src/linux'",
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*", "https_proxy": "http://proxy:3128"}
    for name, value in kept.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(kbuild.CCACHE_ENV, "0")
    make = kbuild.Kbuild(tmp_path, tmp_path / "out", ARCHES["x86_64"], "19",
                         tmp_path / "log", "x86_64-thin")
    make("help")
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert env["PATH"].startswith(str(d)) and kept.items() <= env.items()
    assert not {"KCFLAGS", "LOCALVERSION", "KCONFIG_CONFIG", "CROSS_COMPILE", "LLVM_IAS",
                "MAKEFLAGS", "KBUILD_BUILD_TIMESTAMP"} & set(env)


def test_the_key_has_them_only_when_present(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    spec = BuildSpec("x86_64", kernel_src=str(fake_tree(tmp_path / "linux")))
    keys = []
    for host in ({}, {"pahole": "v1.24"}, {"pahole": "v1.25"}, {}):
        monkeypatch.setattr(toolchain, "host_inputs", lambda reads_rustc, where, host=host: host)
        keys.append(build.plan(spec).key)
    assert keys[0] == keys[3] and len(set(keys)) == 3
