"""ccache under kbuild: masquerading as the compiler first on PATH (kbuild's recorded compile
commands unchanged, so builds made before still rebuild only what changed), its store in the
cache, off with LTOBOOT_CCACHE=0, and the build's line counting the compiles it served. That
a kernel built through it is the same kernel is tests/test_ccache_builds.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.kernel import kbuild

pytestmark = pytest.mark.skipif(shutil.which("ccache") is None, reason="./setup.sh installs it")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(kbuild.CCACHE_ENV, raising=False)
    return tmp_path / "cache"


def test_ccache_masquerades_as_the_compiler(root: Path, tmp_path: Path) -> None:
    env = kbuild.ccache_env("19")
    assert env is not None
    first = env["PATH"].split(":")[0]
    assert (Path(first) / "clang-19").resolve() == Path(shutil.which("ccache") or "").resolve()
    assert env["CCACHE_DIR"].startswith(str(root)) and env["CCACHE_BASEDIR"] == str(root)
    # two compiles of one file from two trees: the second is a hit (base_dir: relative paths)
    counts = kbuild.ccache_counts(env)
    assert counts == (0, 0)
    for tree in ("a", "b"):
        d = root / "trees" / tree
        d.mkdir(parents=True)
        (d / "x.c").write_text("int f(void) { return 1; }\n")
        subprocess.run(["clang-19", "-c", "x.c", "-o", "x.o"], cwd=d, check=True,
                       env={**os.environ, **env})
    assert kbuild.ccache_counts(env) == (1, 2)


def test_off_when_asked(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(kbuild.CCACHE_ENV, "0")
    assert kbuild.ccache_env("19") is None
    assert kbuild.ccache_counts(None) is None
