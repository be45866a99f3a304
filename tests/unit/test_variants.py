"""The catalogue of broken builds is data that holds together: every variant names real
checks and arches, is shown failing by the generated test or a test of its own that exists,
and its cache key is what it changes (its edits and config), not the code that makes them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from harness.base.arch import ARCH_NAMES
from harness.checks import CHECKS
from harness.kernel import variants
from harness.kernel.model import Kernel
from harness.kernel.variants import VARIANTS, Edit, Shown, shown_to_fail

ROOT = Path(__file__).resolve().parents[2]
OPT_IN = {"initcall_order"}  # `ltoboot run --initcalls`


def test_every_variant_names_real_checks_and_arches() -> None:
    for v in VARIANTS.values():
        assert v.edits or v.config, v.name
        assert v.caught_by, f"{v.name} is caught by nothing"
        for c in v.caught_by:
            assert c.check in set(CHECKS) | OPT_IN, (v.name, c.check)
            assert set(c.arches) <= set(ARCH_NAMES), (v.name, c.arches)
            assert c.says.strip(), v.name


def test_every_variant_is_shown_failing_by_a_test_that_exists() -> None:
    generated = {name for name, _, _ in shown_to_fail()}
    for v in VARIANTS.values():
        if v.own_test:
            path, name = v.own_test.split("::")
            assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), v.own_test
        else:
            assert v.name in generated, v.name
            assert all(c.shown is Shown.CHECK for c in v.caught_by), v.name


def test_generated_cases_are_sorted_and_unique() -> None:
    cases = [(n, a, c.check) for n, a, c in shown_to_fail()]
    assert cases == sorted(set(cases))


def test_the_key_is_the_edits_not_the_code() -> None:
    v = VARIANTS["versions-unchecked"]
    changed = dataclasses.replace(v, edits=(dataclasses.replace(v.edits[0], new="x"),))
    assert changed.key() != v.key()
    assert "inspect" not in Path(variants.__file__).read_text()


def test_an_append_edit_appends(tmp_path: Path) -> None:
    f = tmp_path / "Makefile"
    f.write_text("obj-y += a.o\n")
    inode = f.stat().st_ino
    Edit("Makefile", "", "CFLAGS_a.o += -DX\n").apply(tmp_path)
    assert f.read_text() == "obj-y += a.o\nCFLAGS_a.o += -DX\n"
    assert f.stat().st_ino != inode  # a hard-linked original keeps its content


def _tree_kernel(tmp: Path, arch: str, missing: str = "") -> Kernel:
    """A kernel whose tree holds every file the catalogue edits, with the text to change
    (except the edits of variant `missing`: a tree of another kernel version)."""
    tree = tmp / "linux"
    for v in VARIANTS.values():
        for e in v.edits:
            f = tree / e.path
            f.parent.mkdir(parents=True, exist_ok=True)
            if v.name != missing:
                f.write_text((f.read_text() if f.exists() else "") + e.old + "\n")
            else:
                f.touch()
    return Kernel(arch=arch, lto="thin", release="6.1.192", image=tmp / "bzImage",
                  config=tmp / "config", system_map=None, modules=None,
                  build_dir=tree / ".ltoboot-b", source_tree=tree, compiler="clang",
                  linker="LLD", llvm_major=19, source="test", key="k")


def test_a_bundle_is_one_kernel_whichever_member_asks(tmp_path: Path) -> None:
    base = _tree_kernel(tmp_path, "x86_64")
    for bundle in variants.BUNDLES:
        kernels = {tuple(v.name for v in variants.sharing(base, n)) for n in bundle
                   if variants.sharing(base, n) != [VARIANTS[n]]}
        assert len(kernels) == 1, kernels
        (members,) = kernels
        assert list(members) == sorted(members)
        # shown on arm64 only: not built into the x86_64 kernel
        assert "notrace-ignored" not in members and "vdso-lto" in members
        assert [v.name for v in variants.sharing(base, "notrace-ignored")] == \
            ["notrace-ignored"]


def test_a_member_whose_edit_does_not_fit_leaves_the_bundle(tmp_path: Path) -> None:
    base = _tree_kernel(tmp_path, "x86_64", missing="kallsyms-unstripped")
    shared = [v.name for v in variants.sharing(base, "cfi-permissive")]
    assert "kallsyms-unstripped" not in shared and "cfi-permissive" in shared
    # asked for itself, it is built alone and its edit says what does not fit
    assert [v.name for v in variants.sharing(base, "kallsyms-unstripped")] == \
        ["kallsyms-unstripped"]
    # never shared: build or boot failures, and variants of no bundle
    for name in ("efi-stub-lto", "hyp-sections-narrowed", "crcs-lost", "kallsyms-inexact"):
        assert all(name not in b for b in variants.BUNDLES), name


def test_bundled_variants_break_the_build_or_boot_of_none() -> None:
    for bundle in variants.BUNDLES:
        for n in bundle:
            assert all(c.shown is Shown.CHECK for c in VARIANTS[n].caught_by), n
