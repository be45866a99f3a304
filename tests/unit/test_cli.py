"""The command line without a kernel: bad input is one line naming the fix, a failed series run
writes no reply, a spec survives a bisect step's argv, and the help and the commands agree."""

from __future__ import annotations

import re
import subprocess
import sys
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
    from harness.kernel import patched
    from harness.reports.results import KernelReport

    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    mail = series.Mail("[PATCH 1/1] x: y", "A <a@e.org>", "", "", "", "<1@e.org>", "",
                       "diff --git a/x b/x\n")
    s = series.Series(None, (mail,), b"", "test")
    monkeypatch.setattr(series, "read", lambda path, work, **where: s)
    monkeypatch.setattr(series, "apply", lambda s, repo, base: patched.Applied(
        tmp_path, "0" * 40, "v1", "tree at v1 + 1 patch", "k"))
    failed = KernelReport(label="x86_64-thin", results=[CheckResult("cfi", False, "broken")])
    monkeypatch.setattr(pipeline, "check_kernels", lambda *a, **k: iter([failed]))
    reply_file = tmp_path / "reply.eml"
    for name in ("Makefile", "Kconfig"):  # what makes --kernel-src a kernel tree
        (tmp_path / name).write_text("")
    (tmp_path / "s.mbox").write_text("")
    assert main(["tested-by", "--series", str(tmp_path / "s.mbox"), "--kernel-src",
                 str(tmp_path), "--arch",
                 "x86_64", "--name", "T", "--email", "t@e.org", "--reply", str(reply_file)]) == 1
    out = capsys.readouterr()
    assert "Tested-by:" not in out.out and "FAIL cfi: broken" in out.out
    assert "no Tested-by, no reply" in out.err and not reply_file.exists()


def test_a_spec_survives_the_trip_through_a_bisect_steps_argv(tmp_path: Path) -> None:
    """cmd_bisect tells each step its kernel by options.spec_argv: every field of BuildSpec
    must come back (a new one fails here until spec_argv carries it)."""
    import dataclasses

    from harness import cli, options
    from harness.cli_args import parser
    from harness.kernel.model import BuildSpec

    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_PRINTK=y\n")
    base = tmp_path / "my.config"
    base.write_text("CONFIG_ARM64=y\n")
    values = {"arch": "arm64", "lto": "full", "llvm": "14", "kernel_src": str(tmp_path),
              "fragments": (str(frag),), "config": str(base)}
    assert set(values) | {"prebuilt"} == {f.name for f in dataclasses.fields(BuildSpec)}
    spec = BuildSpec(**values)  # type: ignore[arg-type]
    args = parser().parse_args(["bisect-step", *options.spec_argv(spec)])
    assert cli._bisect_spec(args) == spec


def test_help_lists_the_commands_in_the_order_a_user_meets_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli_args import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    out = capsys.readouterr().out
    order = ["run", "tested-by", "bisect", "matrix", "lava", "coverage", "bisect-step"]
    at = [re.search(rf"^    {c}(\s|$)", out, re.M).start() for c in order]  # type: ignore[union-attr]
    assert at == sorted(at), out
    with pytest.raises(SystemExit):
        parser().parse_args(["--version"])
    assert capsys.readouterr().out.startswith("ltoboot ")


def test_every_command_has_what_it_does() -> None:
    from harness import cli
    from harness.cli_args import COMMANDS, LAVA_COMMANDS

    named = {n for n, _, _ in COMMANDS if n != "lava"} | {f"lava {n}" for n, _, _ in
                                                         LAVA_COMMANDS} | {"cache prune"}
    assert named == set(cli.COMMANDS)


def test_run_starts_without_what_only_other_commands_need() -> None:
    """`ltoboot run` and every bisect step are a process each: LAVA's HTTP client, bisect and
    the mail parser are imported by the commands that use them (and those still import)."""
    probe = ("import sys, harness.cli\n"
             "late = ('requests', 'harness.bisect', 'harness.series', 'harness.lava.server',\n"
             "        'harness.lava.local', 'harness.reports.reply')\n"
             "print(' '.join(m for m in late if m in sys.modules))\n"
             "import harness.bisect, harness.series, harness.lava.server, harness.reports.reply\n")
    got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert got.stdout.strip() == ""
