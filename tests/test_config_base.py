"""--config on a tester's .config, for real through Kconfig (no compile): what ltoboot adds,
what it cannot add and which check then SKIPs, and what stays a build error."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.base import needs
from harness.base.arch import get_arch
from harness.base.errors import BuildError
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel import build, kbuild, kconfig
from harness.kernel.model import BuildSpec

pytestmark = pytest.mark.boot


def _configure(base: dict[str, str], tmp_path: Path, arch: str) -> tuple[dict[str, str], Path]:
    mine = tmp_path / "tester.config"
    mine.write_text(kconfig.render(base))
    spec = BuildSpec(arch=arch, config=str(mine))
    p = build.plan(spec)
    out = tmp_path / "out"
    out.mkdir()
    make = kbuild.Kbuild(p.src.tree, out, get_arch(arch), p.tc.llvm, tmp_path / "log",
                         spec.label)
    return build.configure(out, spec, make, p.wanted, p.optional, tmp_path / "log"), out


def test_an_option_a_tester_config_blocks_is_listed_and_its_check_skips(
        kernels: Kernels, primary_arch: str, tmp_path: Path) -> None:
    ours = kconfig.parse(kernels.get(arch=primary_arch).config.read_text())
    # a tester's config without DEBUG_KERNEL (nor EMBEDDED and EXPERT, which select it):
    # KALLSYMS_ALL depends on it, which ltoboot does not ask for, so it cannot add it; and
    # without LKDTM, which it can add
    extra, out = _configure({**ours, "DEBUG_KERNEL": "n", "EXPERT": "n", "EMBEDDED": "n",
                             "LKDTM": "n"}, tmp_path, primary_arch)
    assert "CONFIG_LKDTM=y" in extra["config_added"].split()
    assert extra["config_not_added"] == "CONFIG_KALLSYMS_ALL=y (got: n)"
    got = kconfig.parse((out / ".config").read_text())
    assert got.get("KALLSYMS_ALL", "n") == "n" and got["LTO_CLANG_THIN"] == "y"
    why = needs.unmet("llvm_symbols", got, 19, "clang 19", True, primary_arch, "thin")
    assert why is not None and "KALLSYMS_ALL" in why  # the check SKIPs, saying why


def test_the_lto_mode_not_sticking_is_still_a_build_error(
        kernels: Kernels, primary_arch: str, tmp_path: Path) -> None:
    ours = kconfig.parse(kernels.get(arch=primary_arch).config.read_text())
    # a tester's coverage config: HAS_LTO_CLANG depends on !GCOV_KERNEL, so ThinLTO cannot be
    # had on top of it, and that is the build's error, not a check's SKIP
    with pytest.raises(BuildError, match=r"Kconfig dropped options we asked for: "
                       r".*CONFIG_LTO_CLANG_THIN=y"):
        _configure({**ours, "GCOV_KERNEL": "y"}, tmp_path, primary_arch)
