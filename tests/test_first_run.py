"""The README's first command, exactly as a newcomer runs it: the installed `ltoboot run`, no
options (both arches at once, in threads of one process), on a cache that holds the two default
builds and nothing else of this run's, so that the whole first-run sequence of both threads
(the tarball's hash record, kconfig symbols, busybox, initramfs, probe modules, the accelerator
probe, logs) runs every time. The suite otherwise runs one arch per process and once never saw
this path crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.base.arch import ARCH_NAMES
from harness.faces.pytest_plugin.fixtures import Kernels

pytestmark = pytest.mark.boot


def test_readme_first_command_on_a_first_run_cache(kernels: Kernels, tmp_path: Path) -> None:
    trees = {kernels.get(arch=a).source_tree for a in ARCH_NAMES}  # built once per machine
    assert len(trees) == 1, trees
    tree = trees.pop()
    assert tree is not None
    fresh = tmp_path / "first-run-cäche"  # kbuild refuses spaces and colons (not Unicode)
    (fresh / "src").mkdir(parents=True)
    # the unpacked default tarball with its two builds inside, and nothing else of the cache
    (fresh / "src" / tree.parent.name).symlink_to(tree.parent)
    ltoboot = Path(sys.executable).parent / "ltoboot"  # the installed entry point
    env = {**os.environ, "LTOBOOT_CACHE": str(fresh)}
    env.pop("LTOBOOT_RUN_ID", None)
    got = subprocess.run([str(ltoboot), "run"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=900, check=False)
    said = got.stdout + got.stderr
    assert got.returncode == 0, said
    assert "internal error" not in said
    last = got.stdout.strip().splitlines()[-1]
    assert last.startswith("ltoboot: all passed: ")
    for arch in ARCH_NAMES:
        assert f"{arch}-thin ok" in last
    left = [p for d in fresh.iterdir() if d.name != "src" for p in d.rglob("*")
            if p.name.endswith(".tmp") or p.name.startswith((".tmp-", ".write-test-"))]
    assert not left and not list(fresh.glob(".write-test-*"))
