"""ccache gives the same kernel, faster: the default x86_64 ThinLTO kernel built without it,
then with a cold one, then again after its cache entry is removed (a warm ccache), then with
one option more. The rebuilt kernel is the same kernel: release, .config, System.map's names
and every check's verdict. And one option more built from the nearest build (the default one)
is the kernel a build from nothing gives. Opt-in (five builds: 45 minutes on 2 cores on a
slow day): LTOBOOT_CCACHE_PROOF=1 .venv/bin/pytest -n0 tests/test_ccache_builds.py -s"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness.base import cache
from harness.kernel import kbuild, nearest
from harness.kernel.build import build_kernel
from harness.kernel.model import BuildSpec, Kernel
from tests import same_kernel

pytestmark = [
    pytest.mark.boot,
    pytest.mark.opt_in("LTOBOOT_CCACHE_PROOF", "(three full kernel builds)"),
    pytest.mark.skipif(shutil.which("ccache") is None, reason="./setup.sh installs ccache"),
]


def _timed(spec: BuildSpec) -> tuple[Kernel, float]:
    started = time.monotonic()
    k = build_kernel(spec)
    return k, time.monotonic() - started


def test_a_warm_ccache_rebuilds_the_same_kernel_at_least_3x_faster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    spec = BuildSpec(arch="x86_64")
    monkeypatch.setenv(kbuild.CCACHE_ENV, "0")
    plain, _ = _timed(spec)
    facts = same_kernel.facts(plain)
    entry = plain.build_dir
    assert entry is not None
    cache.release_all()
    shutil.rmtree(entry)
    monkeypatch.setenv(kbuild.CCACHE_ENV, "1")
    cold, cold_s = _timed(spec)
    cache.release_all()
    shutil.rmtree(entry)
    warm, warm_s = _timed(spec)
    hits, compiles = map(int, warm.extra["ccache"].split("/"))
    print(f"\nccache cold {cold_s:.0f}s ({cold.extra['ccache']}), warm {warm_s:.0f}s "
          f"({warm.extra['ccache']})")
    assert hits >= 0.9 * compiles > 0
    assert warm_s * 3 <= cold_s, (warm_s, cold_s)
    assert same_kernel.facts(warm) == facts
    frag = tmp_path / "one-more.config"
    frag.write_text("CONFIG_LOCALVERSION=\"-one-more\"\n")
    monkeypatch.setenv(nearest.ENV, "0")  # ccache alone (the next test: from the nearest)
    tweak, tweak_s = _timed(BuildSpec(arch="x86_64", fragments=(str(frag),)))
    hits, compiles = map(int, tweak.extra["ccache"].split("/"))
    print(f"one option more: {tweak_s:.0f}s ({tweak.extra['ccache']})")
    assert tweak.release.endswith("-one-more")
    # every compile misses the direct lookup (autoconf.h differs) and hits once preprocessed
    assert hits >= 0.9 * compiles > 0
    assert tweak_s * 1.5 <= cold_s, (tweak_s, cold_s)


def test_one_option_more_starts_from_the_nearest_build_and_is_the_same_kernel(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default kernel (the suite's cache) with one option more: built from nothing, then
    from the default build (its directory copied, the .config made afresh): the same kernel,
    several times faster."""
    base = build_kernel(BuildSpec(arch="x86_64"))
    frag = tmp_path / "one-more.config"
    frag.write_text("CONFIG_LOCALVERSION=\"-one-more-nearest\"\n")
    spec = BuildSpec(arch="x86_64", fragments=(str(frag),))
    monkeypatch.setenv(nearest.ENV, "0")
    full, full_s = _timed(spec)
    assert "incremental_from" not in full.extra
    facts = same_kernel.facts(full)
    assert full.build_dir is not None
    cache.release_all()
    shutil.rmtree(full.build_dir)
    monkeypatch.delenv(nearest.ENV)
    near, near_s = _timed(spec)
    print(f"\none option more: from nothing {full_s:.0f}s ({full.steps} steps, ccache "
          f"{full.extra.get('ccache')}), from the default build {near_s:.0f}s ({near.steps} "
          f"steps); the default's own build from nothing took {base.build_seconds:.0f}s")
    assert base.key[:12] in near.extra["incremental_from"], near.extra
    assert same_kernel.facts(near) == facts
    assert near.steps * 3 <= full.steps, (near.steps, full.steps)
