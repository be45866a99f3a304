"""ccache gives the same kernel, faster: the default x86_64 ThinLTO kernel built without it,
then with a cold one, then again after its cache entry is removed (a warm ccache), then with
one option more. The rebuilt kernel is the same kernel: release, .config, System.map's names
and every check's verdict. Opt-in (three full builds, about 15 minutes on 2 cores):
LTOBOOT_CCACHE_PROOF=1 .venv/bin/pytest -p no:xdist tests/test_ccache_builds.py -s"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from harness import cache
from harness.checks import run_checks
from harness.guest import boot
from harness.kernel import kbuild
from harness.kernel.build import build_kernel
from harness.kernel.model import BuildSpec, Kernel

pytestmark = [
    pytest.mark.boot,
    pytest.mark.opt_in("LTOBOOT_CCACHE_PROOF", "(three full kernel builds)"),
    pytest.mark.skipif(shutil.which("ccache") is None, reason="./setup.sh installs ccache"),
]


def _names(k: Kernel) -> list[str]:
    assert k.system_map is not None
    return sorted(line.split()[2] for line in k.system_map.read_text().splitlines())


def _verdicts(k: Kernel) -> list[tuple[str, str]]:
    guest = boot.boot(k)
    try:
        return [(r.name, r.verdict) for r in run_checks(guest, k)]
    finally:
        guest.close()


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
    facts = (plain.release, plain.config.read_text(), _names(plain), _verdicts(plain))
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
    assert (warm.release, warm.config.read_text(), _names(warm), _verdicts(warm)) == facts
    frag = tmp_path / "one-more.config"
    frag.write_text("CONFIG_LOCALVERSION=\"-one-more\"\n")
    tweak, tweak_s = _timed(BuildSpec(arch="x86_64", fragments=(str(frag),)))
    print(f"one option more: {tweak_s:.0f}s ({tweak.extra['ccache']})")
    assert tweak.release.endswith("-one-more")
    assert tweak_s * 3 <= cold_s, (tweak_s, cold_s)
