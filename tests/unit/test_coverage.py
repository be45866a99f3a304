"""The series coverage table is data that names only real checks and real broken builds, and
docs/series-coverage.md carries exactly what `ltoboot coverage` prints."""

from __future__ import annotations

from pathlib import Path

from harness.checks import CHECKS
from harness.kernel.variants import VARIANTS
from harness.runs import coverage

README = Path(__file__).resolve().parents[2] / "docs" / "series-coverage.md"
OPT_IN = {"initcall_order"}  # `ltoboot run --initcalls`: a second, non-LTO build per arch


def test_every_patch_of_the_series_once_in_order() -> None:
    assert [p.number for p in coverage.PATCHES] == list(range(1, 29))
    assert coverage.PATCHES[21].title == "arm64: export CC_USING_PATCHABLE_FUNCTION_ENTRY"


def test_checks_and_broken_builds_named_exist() -> None:
    for p in coverage.PATCHES:
        assert set(p.checks) <= set(CHECKS) | OPT_IN, p
        assert set(p.broken_by) <= set(VARIANTS) | {"no-LTO kernel"}, p
        assert (p.kind in (coverage.RUN_TIME, coverage.BUILD_OUTPUTS)) == bool(p.checks) or \
            p.kind == coverage.NOT_IN_6_1, p


def test_every_check_of_the_series_is_shown_failing_somewhere() -> None:
    runtime = {c for p in coverage.PATCHES if p.broken_by for c in p.checks}
    new = {"ftrace", "vdso", "lkdtm_rodata", "kvm_nvhe", "build_outputs"}
    assert new <= runtime


def test_verdicts_per_patch() -> None:
    lines = coverage.verdicts([("x86_64-thin", "x86_64", "ftrace", "PASS"),
                               ("arm64-thin", "arm64", "ftrace", "FAIL")])
    # objtool's mcount pass is x86_64's: arm64's verdict belongs to 22/28
    assert lines[4] == ("05/28 objtool: Add a pass for generating __mcount_loc: "
                        "ftrace: x86_64-thin PASS")
    assert lines[21].endswith("ftrace: arm64-thin FAIL")
    assert lines[0].startswith("01/28 x86/boot/compressed: Disable relocation relaxation: "
                               "build-only")


def test_readme_carries_the_table() -> None:
    assert coverage.markdown() in README.read_text()
