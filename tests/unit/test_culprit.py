"""The bisect over a failing series' patches (harness/runs/culprit.py), its steps answered by
reports as the pipeline gives them: a culprit is named only when the step before it passed
the check and it failed the same check; the base's own failure blames nothing; a step that
cannot answer is skipped; a failure that does not come back is not bisected. Real kernels:
tests/test_series_culprit.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from harness.base.errors import BuildError, KernelFailure
from harness.checks import CheckResult
from harness.reports.results import KernelReport, Stage
from harness.runs import culprit
from harness.runs.culprit import Finding, Outcome, PatchRef

N = 7
PATCHES = [PatchRef(i, f"{i}/{N}", f"subject {i}", "Ann <ann@example.org>", f"<p{i}@x>")
           for i in range(1, N + 1)]


def report(failed: tuple[str, ...] = (), *, boot: bool = True, build: bool = True,
           skipped: tuple[str, ...] = ()) -> KernelReport:
    rep = KernelReport("x86_64-thin")
    if not build:
        return rep.fail(Stage.BUILD, BuildError("make failed"))
    if not boot:
        return rep.fail(Stage.BOOT, KernelFailure("panic", "Kernel panic", "RIP: 0010:x"))
    rep.results = [CheckResult(n, n not in failed, f"{n} says so", f"evidence of {n}",
                               skipped=n in skipped) for n in ("vdso", "modules", "lto_config")]
    return rep


def run(tester: Callable[[int], KernelReport], head: KernelReport | None = None
        ) -> tuple[Finding, list[int]]:
    asked: list[int] = []

    def test(k: int) -> KernelReport:
        asked.append(k)
        return tester(k)

    head = head or tester(N)
    checks = culprit.failing(head)
    assert checks is not None
    found = culprit.bisect(PATCHES, head, test, Finding("x86_64", "x86_64-thin", [], checks,
                                                        Outcome.NOT_BISECTED, ""))
    return found, asked


@pytest.mark.parametrize("bad", range(1, N + 1))
def test_the_first_patch_after_which_the_check_fails_is_named(bad: int) -> None:
    found, asked = run(lambda k: report(("vdso",) if k >= bad else ()))
    assert found.outcome is Outcome.CULPRIT
    assert found.patch == PATCHES[bad - 1] and found.checks == ["vdso"]
    assert f"patch {bad}/{N} \"subject {bad}\" breaks vdso on x86_64" in found.said
    assert found.summary == "vdso: vdso says so" and found.excerpt == "evidence of vdso"
    # the head again, the base, then at most ceil(log2(N)) steps
    assert asked[:2] == [N, 0] and len(asked) <= 2 + 3
    verdicts = {s.k: s.verdict for s in found.steps}
    assert verdicts.get(bad - 1, "good") == "good" and verdicts.get(bad, "bad") == "bad"


def test_the_base_failing_the_same_check_blames_nothing() -> None:
    found, asked = run(lambda k: report(("vdso",)))
    assert found.outcome is Outcome.BASE and found.patch is None
    assert found.said == "the base already fails vdso on x86_64: not this series"
    assert asked == [N, 0]


def test_what_the_base_fails_too_is_the_bases_and_the_rest_is_bisected() -> None:
    found, _ = run(lambda k: report(("lto_config", "vdso") if k >= 3 else ("lto_config",)))
    assert found.outcome is Outcome.CULPRIT and found.patch == PATCHES[2]
    assert found.base_failed == ["lto_config"] and found.checks == ["vdso"]
    assert found.summary == "vdso: vdso says so"


def test_another_check_failing_in_between_is_no_culprit_for_this_one() -> None:
    # patch 2 breaks modules (not what the head fails), patch 5 breaks vdso
    found, _ = run(lambda k: report(tuple(n for n, at in (("modules", 2), ("vdso", 5))
                                          if at <= k and (n != "modules" or k < 4))))
    assert found.outcome is Outcome.CULPRIT and found.patch == PATCHES[4]


def test_a_step_that_does_not_build_or_boot_is_skipped() -> None:
    for broken in (report(build=False), report(boot=False)):
        found, asked = run(lambda k, b=broken: b if k == 3 else  # type: ignore[misc]
                           report(("vdso",) if k >= 5 else ()))
        assert found.outcome is Outcome.CULPRIT and found.patch == PATCHES[4]
        (skipped,) = [s for s in found.steps if s.verdict == "skip"]
        assert skipped.k == 3 and asked[2] == 3 and asked[3] == 4  # then the next nearest
        assert "cannot answer" in skipped.summary or "make failed" in skipped.summary


def test_skips_that_leave_several_patches_name_the_candidates() -> None:
    def tester(k: int) -> KernelReport:
        if k in (3, 4):
            return report(build=False)
        return report(("vdso",) if k >= 4 else ())

    found, _ = run(tester)
    assert found.outcome is Outcome.UNRESOLVED and found.patch is None
    assert [p.index for p in found.candidates] == [3, 4, 5]
    assert "one of" in found.said


def test_a_skipped_check_cannot_answer() -> None:
    found, _ = run(lambda k: report(("vdso",)) if k == N else
                   report(skipped=("vdso",)) if k == 0 else report())
    assert found.outcome is Outcome.UNRESOLVED and "the base cannot answer" in found.said


def test_a_failure_that_does_not_come_back_is_not_bisected() -> None:
    head = report(("vdso",))
    found, asked = run(lambda k: report(), head=head)
    assert found.outcome is Outcome.NOT_REPRODUCED and asked == [N]
    assert "does not come back" in found.said and found.patch is None


def test_a_kernel_that_does_not_boot_is_bisected_on_booting() -> None:
    found, _ = run(lambda k: report(boot=k < 6))
    assert found.outcome is Outcome.CULPRIT and found.patch == PATCHES[5]
    assert found.checks == [culprit.BOOT] and "RIP: 0010:x" in found.excerpt


def test_only_a_report_that_failed_has_something_to_bisect() -> None:
    assert culprit.failing(report()) is None
    assert culprit.failing(report(build=False)) is None
    assert culprit.failing(report(("modules",))) == ["modules"]
    assert culprit.failing(report(boot=False)) == [culprit.BOOT]


def test_a_check_the_base_cannot_run_is_never_taken_for_a_pass() -> None:
    """The base fails vdso and SKIPs modules: modules has nothing to compare with, and no
    patch is blamed for it (a hostile review's false blame)."""
    found, _ = run(lambda k: report(("vdso", "modules")) if k else
                   report(("vdso",), skipped=("modules",)))
    assert found.outcome is Outcome.UNRESOLVED and found.patch is None
    assert found.base_failed == ["vdso"] and "cannot answer for modules" in found.said


def test_only_what_fails_again_at_the_head_is_bisected() -> None:
    """vdso failed once at the head only; modules failed twice and is what is bisected, to its
    own culprit; a flake of vdso at a step blames nothing."""
    head = report(("modules", "vdso"))
    found, _ = run(lambda k: report(("modules",) if k >= 6 else ("vdso",) if k == 3 else ()),
                   head=head)
    assert found.outcome is Outcome.CULPRIT and found.patch == PATCHES[5]
    assert found.checks == ["modules"] and found.flaky == ["vdso"]
    # nothing failed twice at the head that the base passed: nothing is bisected or blamed
    found, _ = run(lambda k: report(("lto_config",)), head=report(("lto_config", "vdso")))
    assert found.outcome is Outcome.BASE and found.checks == ["lto_config"]


def test_a_head_that_cannot_answer_again_is_said_so() -> None:
    found, _ = run(lambda k: report(boot=False), head=report(("vdso",)))
    assert found.outcome is Outcome.NOT_REPRODUCED
    assert "could not answer when booted again" in found.said and "passed" not in found.said


def test_an_error_while_bisecting_keeps_the_run_and_says_why(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A step that cannot be made (the repository lost the base's objects) stops the bisect
    with its reason; the run's own verdicts and documents are not lost."""
    from harness.base.errors import UsageError
    from harness.kernel import patched
    from harness.kernel.model import BuildSpec
    from harness.mail import series

    def gone(applied: object, k: int) -> object:
        raise UsageError("cannot make the tree of patches 1-3: objects gone")

    monkeypatch.setattr(patched, "step_tree", gone)
    mails = tuple(series.Mail(f"[PATCH {i}/2] t{i}", "A <a@e.org>", "", "", "", f"<{i}@e>", "",
                              "") for i in (1, 2))
    head = report(("vdso",))
    head.spec = BuildSpec(arch="x86_64")
    applied = patched.Applied(Path("/nonexistent"), "0" * 40, "v1", "d", "k")
    (found,) = culprit.find(series.Series(None, mails, b"", "t"), applied, [head], "tcg", None,
                            lambda spec: "ltoboot …")
    assert found.outcome is Outcome.UNRESOLVED and "objects gone" in found.said


def test_a_kernel_that_fails_to_boot_another_way_cannot_answer() -> None:
    """The head panics; a step that hangs (a loaded machine, another bug) is no answer for a
    panic: skipped, never blamed."""
    def tester(k: int) -> KernelReport:
        rep = KernelReport("x86_64-thin")
        if k >= 6:
            return rep.fail(Stage.BOOT, KernelFailure("panic", "Kernel panic", "RIP: 0010:x"))
        if k == 3:
            return rep.fail(Stage.BOOT, KernelFailure("hang", "no output for 60 s"))
        return report()

    found, _ = run(tester)
    assert found.outcome is Outcome.CULPRIT and found.patch == PATCHES[5]
    (hung,) = [s for s in found.steps if s.k == 3]
    assert hung.verdict == "skip" and "another way (hang; the head: panic)" in hung.summary
