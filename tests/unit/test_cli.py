"""The command line without a kernel: bad input is one line naming the fix, a failed series run
writes no reply, a spec survives a bisect step's argv, and the help and the commands agree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.faces.cli import main


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
    (["run", "--config", "tinyconfig,defconfig"], "a comma-separated list is for `ltoboot matrix`"),
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
    from harness.checks import CheckResult
    from harness.kernel import patched
    from harness.mail import series
    from harness.reports.results import KernelReport
    from harness.runs import pipeline

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
    argv = ["tested-by", "--series", str(tmp_path / "s.mbox"), "--kernel-src", str(tmp_path),
            "--arch", "x86_64", "--name", "T", "--email", "t@e.org", "--reply", str(reply_file)]
    assert main([*argv, "--no-bisect"]) == 1
    out = capsys.readouterr()
    assert "Tested-by:" not in out.out and "FAIL cfi: broken" in out.out
    assert "no Tested-by; no report to send: --no-bisect" in out.err
    assert not reply_file.exists()
    # bisected: the base fails too, so no patch is named and nothing is written
    from harness.runs import culprit

    found = culprit.Finding("x86_64", "x86_64-thin", [], ["cfi"], culprit.Outcome.BASE,
                            "the base already fails cfi on x86_64: not this series")
    asked: list[object] = []

    def find(*args: object) -> list[culprit.Finding]:
        asked.append(args)
        return [found]

    monkeypatch.setattr(culprit, "find", find)
    assert main(argv) == 1
    out = capsys.readouterr()
    assert asked and "the base already fails cfi on x86_64: not this series" in out.out
    assert "no report to send: no patch named" in out.err and not reply_file.exists()


def test_a_spec_survives_the_trip_through_a_bisect_steps_argv(tmp_path: Path) -> None:
    """cmd_bisect tells each step its kernel by options.spec_argv: every option of the kernel's
    (options.SPEC_OPTIONS), at a value other than its default, must come back through argv and
    spec_from, as each reader reads it (a new option fails here until it has a value below)."""
    import dataclasses

    from harness.faces import cli
    from harness.faces.cli_args import parser
    from harness.kernel.model import BuildSpec
    from harness.runs import matrix, options

    tmp_path = tmp_path.resolve()  # a spec holds absolute, resolved paths
    frags = [tmp_path / "extra.config", tmp_path / "more.config"]
    for f in frags:
        f.write_text("CONFIG_PRINTK=y\n")
    base = tmp_path / "my.config"
    base.write_text("CONFIG_ARM64=y\n")
    values = {"arch": "arm64", "lto": "full", "llvm": "14", "kernel_src": str(tmp_path),
              "fragments": tuple(map(str, frags)), "config": str(base)}
    assert {o.field for o in options.SPEC_OPTIONS} == set(values)
    assert set(values) | {"prebuilt"} == {f.name for f in dataclasses.fields(BuildSpec)}
    default = options.spec_from(vars(parser().parse_args(["run"])), "x86_64")
    assert [f for f, v in values.items() if getattr(default, f) == v] == []
    spec = BuildSpec(**values)  # type: ignore[arg-type]
    argv = options.spec_argv(spec)

    assert cli._bisect_spec(parser().parse_args(["bisect-step", *argv])) == spec
    run = parser().parse_args(["run", *argv])
    assert options.kernel_specs(vars(run)) == [spec]
    assert options.spec_from(lambda name: getattr(run, name), "arm64") == spec  # as getoption
    cells = matrix.plan(vars(parser().parse_args(["matrix", *argv])))
    assert [s for _, s in cells] == [spec]


def test_a_spec_value_may_start_with_a_dash() -> None:
    """spec_argv writes --flag=value: a value such as "-O2" is not taken for an option."""
    import argparse

    from harness.runs import options

    for o in (options.opt("--cflags", default="", field="cflags"),
              options.opt("--extra", action="append", default=[], field="extra")):
        p = argparse.ArgumentParser()
        o.add(p.add_argument)
        value = ["-O2", "-g"] if o.kwargs.get("action") == "append" else "-O2 -g"
        assert getattr(p.parse_args(o.argv(value)), o.dest) == value


def test_every_matrix_cell_builds_with_the_fragments(tmp_path: Path) -> None:
    """`ltoboot matrix --fragment` reaches every cell's kernel, on every axis."""
    from harness.faces.cli_args import parser
    from harness.runs import matrix

    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_PRINTK=y\n")
    args = parser().parse_args(["matrix", "--fragment", str(frag), "--llvm", "14,19",
                                "--lto", "thin,none", "--kernel-src", "/a.tar.xz",
                                "--kernel-src", "/b.tar.xz"])
    cells = matrix.plan(vars(args))
    assert len(cells) == 2 * 2 * 2 * 2
    assert {(c.kernel_src, c.llvm, c.arch, c.lto) for c, _ in cells} == \
        {(s.kernel_src, s.llvm, s.arch, s.lto) for _, s in cells}
    assert {s.fragments for _, s in cells} == {(str(frag.resolve()),)}


def test_help_lists_the_commands_in_the_order_a_user_meets_them(
        capsys: pytest.CaptureFixture[str]) -> None:
    from harness.faces.cli_args import parser

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
    from harness.faces import cli
    from harness.faces.cli_args import COMMANDS, LAVA_COMMANDS

    named = {n for n, _, _ in COMMANDS if n != "lava"} | {f"lava {n}" for n, _, _ in
                                                         LAVA_COMMANDS} | {"cache prune"}
    assert named == set(cli.COMMANDS)


def test_run_starts_without_what_only_other_commands_need() -> None:
    """`ltoboot run` and every bisect step are a process each: LAVA's HTTP client, bisect and
    the mail parser are imported by the commands that use them (and those still import)."""
    probe = ("import sys, harness.faces.cli\n"
             "late = ('requests', 'harness.runs.bisect', 'harness.mail.series',\n"
             "        'harness.runs.lava.server', 'harness.runs.lava.local',\n"
             "        'harness.reports.reply')\n"
             "print(' '.join(m for m in late if m in sys.modules))\n"
             "import harness.runs.bisect, harness.mail.series, harness.runs.lava.server\n"
             "import harness.reports.reply\n")
    got = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert got.stdout.strip() == ""


def test_the_reproducer_names_the_series_by_message_id_or_as_fetched(tmp_path: Path) -> None:
    """The command in a culprit's report: the series from the URL it was fetched from (never
    with credentials), else by its Message-ID, else the file; the base by commit; the
    kernel as this run asked for it, from the tester's repository."""
    import argparse

    from harness.faces import cli
    from harness.kernel.model import BuildSpec
    from harness.mail import series

    mail = series.Mail("[PATCH 1/1] x: y", "A <a@e.org>", "", "", "", "<1@e.org>", "", "")
    spec = BuildSpec(arch="x86_64", kernel_src="/cache/series/k/tree", config="/my dir/c")
    args = argparse.Namespace(series="https://u:secret@lore.example/x/t.mbox.gz",
                              kernel_src=str(tmp_path / "linux"))
    said = cli._reproducer(args, series.Series(None, (mail,), b"", "t"), "a" * 40)(spec)
    assert said.startswith("ltoboot tested-by --series '<1@e.org>' --base " + "a" * 40)
    assert f"--kernel-src={tmp_path / 'linux'}" in said and "'--config=/my dir/c'" in said
    assert "--arch=x86_64" in said and "/cache/series" not in said
    fetched = series.Series(None, (mail,), b"", "t", origin="https://lore.example/x/t.mbox.gz")
    said = cli._reproducer(args, fetched, "a" * 40)(spec)
    assert "--series https://lore.example/x/t.mbox.gz " in said and "secret" not in said


def test_bad_input_is_one_line_even_when_the_cache_is_over_its_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    """A bad command added nothing to the cache: no pruning, nothing but its error (a cold
    CI's cache over its bound added a prune line to a refused fragment's one)."""
    from harness.base import cache

    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("LTOBOOT_CACHE_MAX", "1K")
    # as when the refusal came after an entry was made (the source's Kconfig symbols, say)
    monkeypatch.setattr(cache, "grew", lambda: True)
    logs = tmp_path / "cache" / "logs"
    logs.mkdir(parents=True)
    (logs / "old.log").write_bytes(b"x" * 100_000)
    os.utime(logs / "old.log", (1e9, 1e9))  # a log of long ago: the first to go
    assert main(["run", "--config", str(tmp_path / "no-such.config")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("ltoboot: error: --config"), err
    assert (logs / "old.log").exists()
