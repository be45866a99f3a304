"""`ltoboot matrix`'s config axis without a kernel: `--config A,B` is one more axis of the
product, every value is checked before the first cell is built, and the table, its notes and
the JSON name each cell's base config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.base.errors import UsageError
from harness.checks import CheckResult
from harness.faces import cli
from harness.faces.cli_args import parser
from harness.kernel.model import BuildSpec
from harness.reports.results import KernelReport
from harness.runs import matrix, options, pipeline


def plan(*argv: str) -> list[tuple[matrix.Cell, BuildSpec]]:
    return matrix.plan(vars(parser().parse_args(["matrix", *argv])))


@pytest.fixture(autouse=True)
def nothing_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell that reaches the pipeline here fails the test (unless the test stubs it)."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))

    def refuse(*a: object, **k: object) -> KernelReport:
        raise AssertionError("a cell was built: the mistake was found too late")

    monkeypatch.setattr(pipeline, "check_kernel", refuse)
    monkeypatch.setattr(cli, "obtain", refuse)


def test_each_base_config_is_an_axis_of_the_product() -> None:
    cells = plan("--llvm", "14,19", "--arch", "x86_64,arm64", "--lto", "thin",
                 "--config", "tinyconfig,defconfig")
    got = [(c.llvm, c.arch, c.lto, c.config) for c, _ in cells]
    assert got == [(v, a, "thin", b) for v in ("14", "19") for a in ("x86_64", "arm64")
                   for b in ("tinyconfig", "defconfig")]  # config varies fastest
    assert [(s.llvm, s.arch, s.lto, s.config) for _, s in cells] == got
    assert {c.kernel_src for c, _ in cells} == {s.kernel_src for _, s in cells} \
        and len({c.kernel_src for c, _ in cells}) == 1
    assert [c.config for c, _ in plan()] == ["tinyconfig"] * 2  # the default: one per arch


def test_a_config_file_is_checked_as_run_checks_it_and_listed_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "my arm.config"  # a space in a path is fine; a comma is not
    cfg.write_text("CONFIG_ARM64=y\n")
    monkeypatch.chdir(tmp_path)
    cells = plan("--arch", "arm64", "--config",
                 f"tinyconfig, {cfg},defconfig,./my arm.config,tinyconfig")
    resolved = str(cfg.resolve())
    assert [c.config for c, _ in cells] == ["tinyconfig", resolved, "defconfig"]
    assert [s.config for _, s in cells] == ["tinyconfig", resolved, "defconfig"]


@pytest.mark.parametrize(("value", "says"), [
    ("tinyconfig,{tmp}/missing.config", "--config {tmp}/missing.config: no such file; give "
     "tinyconfig, defconfig or a kernel .config"),
    # a .config of arm64 is not built for x86_64, the second arch of the default two
    ("defconfig,{tmp}/arm64.config", "is a .config for arm64 (CONFIG_ARM64=y), not for x86_64: "
     "give --arch arm64"),
    ("{tmp}/a,b.config", "a file's path cannot hold one; link the file to a name without a "
     "comma"),
    (" , ", "--config needs at least one value"),
])
def test_a_bad_config_in_the_list_stops_the_matrix_before_any_build(
        value: str, says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "arm64.config").write_text("CONFIG_ARM64=y\n")
    (tmp_path / "a,b.config").write_text("CONFIG_PRINTK=y\n")
    tmp = str(tmp_path.resolve())
    with pytest.raises(UsageError, match=r"^--config "):
        plan("--config", value.format(tmp=tmp))
    assert cli.main(["matrix", "--config", value.format(tmp=tmp)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ltoboot: error: --config "), err
    assert says.format(tmp=tmp) in err


def test_run_takes_one_config_and_names_the_matrix_for_a_list(tmp_path: Path) -> None:
    """`run --config A,B` is one value, as before: a file of that name, else the fix."""
    def specs(value: str) -> list[str]:
        args = vars(parser().parse_args(["run", "--arch", "x86_64", "--config", value]))
        return [s.config for s in options.kernel_specs(args)]

    with pytest.raises(UsageError, match=r"no such file; .* \(a comma-separated list is for "
                       "`ltoboot matrix`\\)$"):
        specs("tinyconfig,defconfig")
    odd = tmp_path / "a,b.config"
    odd.write_text("CONFIG_X86_64=y\n")
    assert specs(str(odd)) == [str(odd.resolve())]


def test_the_table_and_the_json_name_each_cells_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "a-long-name-for-a-server.config"
    cfg.write_text("CONFIG_X86_64=y\n")
    asked: list[BuildSpec] = []

    def check_kernel(spec: BuildSpec, accel: str, names: object) -> KernelReport:
        asked.append(spec)
        ok = spec.config == "defconfig"
        return KernelReport(spec.label, spec=spec, results=[
            CheckResult("proc_version", True, "ok"),
            CheckResult("cfi", ok, "ok" if ok else "no CFI failure")])

    monkeypatch.setattr(pipeline, "check_kernel", check_kernel)
    out = tmp_path / "m.json"
    argv = ["matrix", "--arch", "x86_64", "--config", f"defconfig,{cfg}", "--json", str(out)]
    assert cli.main(argv) == 1  # the file's cell failed a check
    assert [s.config for s in asked] == ["defconfig", str(cfg.resolve())]

    cells = json.loads(out.read_text())
    assert [c["config"] for c in cells] == ["defconfig", str(cfg.resolve())]
    assert [c["status"] for c in cells] == ["passed", "failed"]

    text = capsys.readouterr().out
    table = text[text.index("\nkernel "):].splitlines()
    assert table[1].split()[:6] == list(matrix.HEADER[:6])
    assert table[1].split()[4] == "config"
    short = matrix.config_name(str(cfg))  # cut to keep the table narrow; the JSON has it all
    assert len(short) == matrix.CONFIG_WIDTH and short == "a-long-na…ver.config"
    assert [line.split()[3:6] for line in table[3:5]] == [["thin", "defconfig", "passed"],
                                                          ["thin", short, "failed"]]
    assert f"x86_64 thin {short}: cfi: no CFI failure" in text  # the notes name it too
    assert matrix.config_name(str(tmp_path / "x86.config")) == "x86.config"


def test_two_files_of_one_name_read_apart_in_the_table(tmp_path: Path) -> None:
    """The hostile review: /a/my.config and /b/my.config were one name in the table."""
    a, b = str(tmp_path / "a" / "my.config"), str(tmp_path / "b" / "my.config")
    names = matrix.config_names([a, b, "tinyconfig"])
    assert names["tinyconfig"] == "tinyconfig"
    assert names[a] != names[b] and names[a].startswith("my.config~")
    cells = [matrix.Cell("k", "19", "x86_64", "thin", config=c,
                         status=matrix.CellStatus.PASSED) for c in (a, b)]
    text = matrix.table(cells)
    assert f"{names[a]}: {a}" in text and f"{names[b]}: {b}" in text
