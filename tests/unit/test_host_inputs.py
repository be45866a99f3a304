"""What of the machine besides clang and lld Kconfig reads into a .config (pahole, rustc and
bindgen): part of a build's key when present, so a kernel cached before one was installed is
not served after it; absent, the keys stay those of the kernels already built."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.kernel import build, toolchain
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


def test_the_key_has_them_only_when_present(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    spec = BuildSpec("x86_64", kernel_src=str(fake_tree(tmp_path / "linux")))
    keys = []
    for host in ({}, {"pahole": "v1.24"}, {"pahole": "v1.25"}, {}):
        monkeypatch.setattr(toolchain, "host_inputs", lambda reads_rustc, host=host: host)
        keys.append(build.plan(spec).key)
    assert keys[0] == keys[3] and len(set(keys)) == 3
