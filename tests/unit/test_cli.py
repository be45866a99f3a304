from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import main


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--arch", "riscv"], "unknown architecture 'riscv': use one of arm64, x86_64"),
    (["run", "--kernel-src", "/nonexistent/linux"], "--kernel-src /nonexistent/linux: no such"),
    (["run", "--check", "nope"], "--check nope: unknown check"),
    (["run", "--llvm", "nineteen"], "--llvm takes a version number"),
    (["run", "--kernel", "/k/bzImage", "--kernel-src", "/src"], "drop --kernel-src"),
    (["run", "--kernel", "a", "--kernel", "b", "--arch", "x86_64"],
     "one architecture per --kernel"),
    (["bisect", "--kernel", "/k/bzImage", "--good", "a", "--bad", "b"],
     "--kernel does not apply"),
    (["run", "--config", "/nonexistent/.config"], "--config /nonexistent/.config: no such file"),
    (["run", "--kernel", "/k/bzImage", "--config", "defconfig"], "drop --kernel-src, --fragment"),
    (["tested-by", "--name", "T", "--email", "t@e.org", "--reply", "r.eml"],
     "--reply writes the answer to a mailed series: give --series too"),
    (["tested-by", "--name", "T", "--email", "t@e.org", "--series", "s.mbox"],
     "--series needs --kernel-src TREE"),
])
def test_bad_input_is_one_line_naming_the_fix(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltoboot: error: ") and message in err
    assert err.count("\n") == 1


def test_a_failed_series_run_writes_no_reply_and_no_trailer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI's decision alone (tests/test_tested_by_series.py boots the real thing): a
    failed check means no Tested-by, no reply file, exit 1."""
    from harness import pipeline, series
    from harness.checks import CheckResult
    from harness.reports.results import KernelReport

    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    mail = series.Mail("[PATCH 1/1] x: y", "A <a@e.org>", "", "", "", "<1@e.org>", "",
                       "diff --git a/x b/x\n")
    s = series.Series(None, (mail,), b"", "test")
    monkeypatch.setattr(series, "read", lambda path, work: s)
    monkeypatch.setattr(series, "apply", lambda s, repo, base: series.Applied(
        tmp_path, "0" * 40, "v1", "tree at v1 + 1 patch", "k"))
    failed = KernelReport(label="x86_64-thin", results=[CheckResult("cfi", False, "broken")])
    monkeypatch.setattr(pipeline, "check_kernels", lambda *a, **k: iter([failed]))
    reply_file = tmp_path / "reply.eml"
    for name in ("Makefile", "Kconfig"):  # what makes --kernel-src a kernel tree
        (tmp_path / name).write_text("")
    assert main(["tested-by", "--series", "s.mbox", "--kernel-src", str(tmp_path), "--arch",
                 "x86_64", "--name", "T", "--email", "t@e.org", "--reply", str(reply_file)]) == 1
    out = capsys.readouterr()
    assert "Tested-by:" not in out.out and "FAIL cfi: broken" in out.out
    assert "no Tested-by, no reply" in out.err and not reply_file.exists()
