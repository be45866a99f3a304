"""The tester's base config (--config) and the build history behind the time-left estimate."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from harness.base.errors import BuildError, UsageError
from harness.kernel import build, kbuild, kconfig, source
from harness.kernel.build import Plan
from harness.kernel.model import BuildSpec, Checkout, Kernel
from harness.kernel.toolchain import Toolchain


def test_what_was_added_to_a_base_and_what_could_not_be() -> None:
    before = {"LTO_NONE": "y", "MODULES": "y", "LKDTM": "n"}
    wanted = {"LTO_CLANG_THIN": "y", "MODULES": "y", "LKDTM": "y", "CFI_CLANG": "y"}
    after = {"LTO_CLANG_THIN": "y", "MODULES": "y", "LKDTM": "y"}
    got = build.added_to_base("/home/t/my.config", before, wanted, after, {"CFI_CLANG"})
    assert got == {"config_base": "my.config",
                   "config_added": "CONFIG_LTO_CLANG_THIN=y CONFIG_LKDTM=y",
                   "config_not_added": "CONFIG_CFI_CLANG=y (got: n)"}


def test_a_base_config_file_is_named_by_its_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a.config", tmp_path / "b.config"
    a.write_text("CONFIG_MODULES=y\n")
    b.write_text("CONFIG_MODULES=y\n")
    assert build.base_config_identity(BuildSpec("x86_64", config=str(a))) == \
        build.base_config_identity(BuildSpec("x86_64", config=str(b))) != "tinyconfig"
    assert build.base_config_identity(BuildSpec("x86_64")) == "tinyconfig"
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x00\x01 not a config")
    with pytest.raises(UsageError, match="is not a kernel config"):
        build._base_file(BuildSpec("x86_64", config=str(junk)))


def test_time_left_comes_from_the_last_build_of_the_same_config(tmp_path: Path) -> None:
    def record(name: str, base: str | None, steps: int, seconds: float,
               incremental: bool = False) -> None:
        r: dict[str, object] = {"version": "6.1.192", "compiler": "clang 19", "steps": steps,
                                "build_seconds": seconds, "incremental": incremental}
        if base is not None:
            r["base"] = base
        (tmp_path / name).write_text(json.dumps(r))

    record("x86_64-thin-aaa.json", None, 1299, 187.0)  # before --config: tinyconfig
    record("x86_64-thin-bbb.json", "file:123", 5000, 900.0)
    time.sleep(0.01)  # newer, but a build from another's steps: no measure of one from nothing
    record("x86_64-thin-ccc.json", None, 92, 98.3, incremental=True)
    assert build._previous_build(tmp_path, "x86_64-thin", "6.1.192", "clang 19",
                                 "tinyconfig") == (1299, 187.0)
    assert build._previous_build(tmp_path, "x86_64-thin", "6.1.192", "clang 19",
                                 "file:123") == (5000, 900.0)
    assert build._previous_build(tmp_path, "x86_64-thin", "6.1.192", "clang 19",
                                 "defconfig") == (0, 0.0)
    said: list[str] = []
    from harness.base import progress
    previous = progress.set_sink(said.append)
    try:
        make = kbuild.Kbuild(tmp_path, tmp_path, None, "19", tmp_path / "log",  # type: ignore
                             "x86_64-thin", 1000, 200.0)
        make.steps = 500
        make._report(90.0, "CC init/main.o")
    finally:
        progress.set_sink(previous)
    assert "500/1000 steps (50%), about 1m40s left (last time 3m20s)" in said[0]


END = "make: *** [Makefile:250: __sub-make] Error 2\n"


def test_a_compile_error_far_above_the_tail_is_still_one(tmp_path: Path) -> None:
    """bisect remembers a commit that does not compile: with -j2 a cold build prints a hundred
    lines after the error, so the whole output of the failed make is read, not its tail."""
    from harness.base.errors import BuildError
    from harness.kernel import failures

    log = tmp_path / "build.log"
    log.write_text("$ make olddefconfig\n../init/main.c:1:2: error: an earlier make's\n"
                   "$ make -j2\n  CC      init/version.o\n"
                   "../init/main.c:1478:2: error: ltoboot: this commit does not compile\n"
                   + "  CC      kernel/x.o\n" * 200 + END)
    tail = "\n".join(log.read_text().splitlines()[-40:])
    assert failures.compile_error(BuildError("make (all) failed", log=log, tail=tail))
    log.write_text("$ make -j2\n  CC      kernel/x.o\n" + END)
    assert not failures.compile_error(BuildError("make (all) failed", log=log, tail="Error 2"))


def test_a_build_that_fails_alike_is_answered_again_and_a_passing_failure_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A variant or bisect step whose make said a tool's error fails again without a build
    while its log is there; an OOM or a signal is never kept, and a pruned log means build."""
    from harness.base.errors import BuildError
    from harness.kernel import failures

    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "variants" / "arm64-thin-efi-stub-lto-0123"
    log = tmp_path / "variant.log"
    failures.raise_if_remembered(entry)  # nothing kept: no error
    log.write_text("$ make -j2\nKilled\n" + END)
    failures.remember(entry, BuildError("make (all) failed", log=log, tail="Killed"))
    failures.raise_if_remembered(entry)  # a signal may pass next time: not kept
    log.write_text("$ make -j2\nllvm-strip-19: error: 'drivers/firmware/efi/libstub/"
                   "alignedmem.o': The file was not recognized as a valid object file\n" + END)
    failures.remember(entry, BuildError("make (all) failed", log=log, tail=END))
    with pytest.raises(BuildError, match=r"make \(all\) failed \(remembered: delete ") as e:
        failures.raise_if_remembered(entry)
    assert e.value.log == log and e.value.tail == END
    log.unlink()  # the evidence was pruned with the logs: build again to have it
    failures.raise_if_remembered(entry)
    assert not failures.record(entry).exists()


class _Kconfig:
    """make of a base and olddefconfig, as Kconfig treats the image compressor's choice: the
    last option of the choice set to y is the one kept."""

    CHOICE = ("KERNEL_GZIP", "KERNEL_XZ", "KERNEL_LZ4")

    def __init__(self, out: Path) -> None:
        self.config, self.tree = out / ".config", out

    def __call__(self, target: str) -> None:
        if target == "tinyconfig":
            self.config.write_text("CONFIG_KERNEL_XZ=y\n")
            return
        lines = [x for x in self.config.read_text().splitlines()
                 if not any(c in x for c in self.CHOICE)]
        chosen = [x.removeprefix("CONFIG_").split("=")[0]
                  for x in self.config.read_text().splitlines()
                  if x.endswith("=y") and x.removeprefix("CONFIG_").split("=")[0] in self.CHOICE]
        pick = chosen[-1] if chosen else "KERNEL_GZIP"
        lines += [f"CONFIG_{c}=y" if c == pick else f"# CONFIG_{c} is not set"
                  for c in self.CHOICE]
        self.config.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(("theirs", "kept"), [
    ("", "KERNEL_LZ4"),  # ours: x86_64's tinyconfig kernels are LZ4
    ("CONFIG_KERNEL_GZIP=y\n", "KERNEL_GZIP"),  # the tester's choice overrules ours
    ("CONFIG_KERNEL_XZ=y\n", "KERNEL_XZ"),
])
def test_a_testers_fragment_overrules_our_tinyconfig_preferences(
        tmp_path: Path, theirs: str, kept: str) -> None:
    mine = tmp_path / "mine.config"
    mine.write_text(theirs)
    spec = BuildSpec(arch="x86_64", fragments=(str(mine),))
    wanted = kconfig.wanted_options("x86_64.config", "thin", [mine], {},
                                    build.tinyconfig_fragment(spec))
    out = tmp_path / "out"
    out.mkdir()
    make = _Kconfig(out)
    build.configure(out, spec, make, wanted, frozenset(), tmp_path / "log")  # type: ignore[arg-type]
    assert kconfig.parse((out / ".config").read_text())[kept] == "y"


def test_a_testers_own_compressor_option_is_verified(tmp_path: Path) -> None:
    """What the tester's fragment sets is theirs and verified, even where it is one of ours."""
    mine = tmp_path / "mine.config"
    mine.write_text("CONFIG_KERNEL_LZ4=y\nCONFIG_KERNEL_GZIP=y\n")  # two of one choice
    spec = BuildSpec(arch="x86_64", fragments=(str(mine),))
    assert build.preferences(spec) == frozenset({"KERNEL_XZ"})
    wanted = kconfig.wanted_options("x86_64.config", "thin", [mine], {},
                                    build.tinyconfig_fragment(spec))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BuildError, match="CONFIG_KERNEL_LZ4=y"):
        build.configure(out, spec, _Kconfig(out), wanted, frozenset(),  # type: ignore[arg-type]
                        tmp_path / "log")


def test_only_tinyconfig_builds_take_our_tinyconfig_fragment() -> None:
    assert build.tinyconfig_fragment(BuildSpec(arch="x86_64")) == "x86_64-tinyconfig.config"
    assert build.preferences(BuildSpec(arch="x86_64")) == {"KERNEL_LZ4", "KERNEL_XZ"}
    for spec in (BuildSpec(arch="x86_64", config="defconfig"),
                 BuildSpec(arch="x86_64", config="/some/distro.config"),
                 BuildSpec(arch="arm64")):
        assert build.tinyconfig_fragment(spec) == "" and build.preferences(spec) == frozenset()


def test_an_incremental_build_is_recorded_so_and_an_old_record_is_read_from_its_kernel(
        tmp_path: Path) -> None:
    src = source.KernelSource(tmp_path, "tar:x", "tree", "6.1.192", True, owned=True)
    p = Plan(BuildSpec(arch="x86_64"), src, Toolchain("", "clang 19", "lld", 19), {}, "k" * 20,
             {}, frozenset(), "kin", "near", Checkout())
    index = tmp_path / "index"

    def indexed(key: str, extra: dict[str, str]) -> dict[str, object]:
        entry = tmp_path / key
        entry.mkdir()
        kernel = Kernel("x86_64", "thin", "6.1.192", entry / "bzImage", entry / ".config", None,
                        None, entry, tmp_path, "clang 19", "lld", 19, "src", key, steps=92,
                        build_seconds=98.3, extra=extra)
        kernel.save(entry)
        build._index(tmp_path, kernel, entry, "tinyconfig", p)
        record: dict[str, object] = json.loads((index / f"x86_64-thin-{key}.json").read_text())
        return record

    assert indexed("a" * 20, {"incremental_from": "x86_64-thin fd32 of linux"})["incremental"]
    record = indexed("b" * 20, {})
    assert record["incremental"] is False and not build._incremental(record)
    # a record from before records said it: its kernel's metadata tells
    assert build._incremental({"entry": str(tmp_path / ("a" * 20))})
    assert not build._incremental({"entry": str(tmp_path / ("b" * 20))})
    assert not build._incremental({"entry": str(tmp_path / "gone")})
