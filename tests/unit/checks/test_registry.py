"""Running a check: an answer it did not expect is its failure with the evidence; a machine problem
inside it is no verdict. Declaring one: once, in its module, found without a list, named by the
registry; run and reported in today's order."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

# The order of today's checks, as reported, and as a run (one guest, last used) runs them: the
# crashing ones last, after dmesg_clean judged the others. A new check may come anywhere
# before dmesg_clean without changing these.
REPORTED = ("proc_version", "lto_config", "test_module", "lto_elf_note", "llvm_symbols",
            "build_outputs", "symvers_crcs", "probe_modules", "modversions", "ftrace", "vdso",
            "kvm_nvhe", "pci_fixups", "cfi", "lkdtm_rodata", "efi_stub", "dmesg_clean")
RUN = (*(n for n in REPORTED if n not in ("cfi", "lkdtm_rodata")), "cfi", "lkdtm_rodata")


def test_a_check_meeting_unexpected_output_fails_with_evidence() -> None:
    from pathlib import Path
    from typing import Any

    from harness.checks import registry

    def confused(guest: Any, kernel: Any) -> registry.CheckResult:
        return registry.CheckResult("x", int("grep: /proc/kallsyms: No such file") > 0, "")

    registry.CHECKS["confused"] = registry.Check("confused", "for this test", confused)
    try:
        r = registry.run_check("confused", None, None)  # type: ignore[arg-type]
    finally:
        del registry.CHECKS["confused"]
    assert not r.passed and not r.skipped
    assert r.summary.startswith("unexpected answer from the guest: ValueError")
    assert "No such file" in r.summary and "Traceback" in r.evidence
    assert Path(__file__).name in r.evidence


def test_a_machine_problem_inside_a_check_is_no_verdict(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    from harness.base.errors import BuildError, InfraError
    from harness.checks import registry

    def machine(guest: object, kernel: object) -> registry.CheckResult:
        raise InfraError("UEFI firmware x is missing: run ./setup.sh")

    def kernel_side(guest: object, kernel: object) -> registry.CheckResult:
        raise BuildError("probe modules did not build")

    monkeypatch.setitem(registry.CHECKS, "t1", registry.Check("t1", "", machine))
    monkeypatch.setitem(registry.CHECKS, "t2", registry.Check("t2", "", kernel_side))
    with pytest.raises(InfraError):
        registry.run_check("t1", None, None)  # type: ignore[arg-type]
    got = registry.run_check("t2", None, None)  # type: ignore[arg-type]
    assert got.verdict == "FAIL" and got.summary == "probe modules did not build"


class _Guest:
    """Records which guest each check asked; `crash` breaks it as a panic would."""

    def __init__(self, label: str, ran: list[tuple[str, str]]) -> None:
        from harness.base.errors import KernelFailure

        self.label, self.ran = label, ran
        self.broken: KernelFailure | None = None
        self.companions: dict[str, object] = {}
        self.closed = False

    def ready(self) -> _Guest:
        return self

    def close(self) -> None:
        self.closed = True


def test_a_last_use_runs_the_crashing_checks_on_the_main_guest_after_the_others(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One boot serves every check of a run: the checks that may crash a kernel run last on
    the main guest (after dmesg is judged), in their report order; a companion boots only when
    one of them broke the main guest, and for the pool's guests (not a last use) as before."""
    from harness.base.errors import KernelFailure
    from harness.checks import registry
    from harness.guest import boot

    ran: list[tuple[str, str]] = []
    booted: list[str] = []

    def plain(name: str) -> registry.CheckFn:
        def fn(guest: object, kernel: object) -> registry.CheckResult:
            ran.append((name, guest.label))  # type: ignore[attr-defined]
            return registry.CheckResult(name, True, "")
        return fn

    def crashing(name: str, panics: bool) -> registry.CheckFn:
        def fn(guest: object, kernel: object) -> registry.CheckResult:
            where = registry.companion(guest, kernel, "crash")  # type: ignore[arg-type]
            ran.append((name, where.label))
            if panics:
                where.broken = KernelFailure("panic", "Kernel panic - not syncing")
            return registry.CheckResult(name, True, "")
        return fn

    def companion(main: object, kernel: object, kind: str) -> object:
        guest = _Guest(f"companion-{len(booted) + 1}", ran)
        booted.append(guest.label)
        main.companions[kind] = guest  # type: ignore[attr-defined]
        return guest

    checks = {"t_basic": registry.Check("t_basic", "", plain("t_basic")),
              "t_lkdtm": registry.Check("t_lkdtm", "", crashing("t_lkdtm", True), "crash"),
              "t_cfi": registry.Check("t_cfi", "", crashing("t_cfi", False), "crash"),
              "t_dmesg": registry.Check("t_dmesg", "", plain("t_dmesg"))}
    monkeypatch.setattr(registry, "CHECKS", checks)
    monkeypatch.setattr(boot, "companion", companion)  # the one way a companion boots

    main = _Guest("main", ran)
    got = registry.run_checks(main, None, last_use=True)  # type: ignore[arg-type]
    assert [r.name for r in got] == ["t_basic", "t_lkdtm", "t_cfi", "t_dmesg"]  # report order
    # lkdtm broke the main guest (a panic): cfi needed the one companion of the run
    assert ran == [("t_basic", "main"), ("t_dmesg", "main"), ("t_lkdtm", "main"),
                   ("t_cfi", "companion-1")]
    assert booted == ["companion-1"] and not main.closed
    assert main.companions == {"crash": main.companions["crash"]} \
        and main.companions["crash"] is not main  # never itself after the run

    ran.clear()
    booted.clear()
    checks["t_lkdtm"] = registry.Check("t_lkdtm", "", crashing("t_lkdtm", False), "crash")
    main = _Guest("main", ran)
    registry.run_checks(main, None, last_use=True)  # type: ignore[arg-type]
    assert ran[-2:] == [("t_lkdtm", "main"), ("t_cfi", "main")] and booted == []
    assert main.companions == {}

    ran.clear()
    pool_guest = _Guest("pool", ran)  # a guest other tests go on using: never crashed
    registry.run_checks(pool_guest, None)  # type: ignore[arg-type]
    assert ("t_lkdtm", "companion-1") in ran and ("t_cfi", "companion-1") in ran
    assert booted == ["companion-1"]


def test_checks_run_and_are_reported_in_todays_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.checks import CHECKS, registry

    assert [n for n in CHECKS if n in REPORTED] == list(REPORTED)
    assert list(CHECKS)[-1] == "dmesg_clean"  # judged after what every other check did
    ran: list[tuple[str, str]] = []

    def recorded(check: registry.Check) -> registry.Check:
        def fn(guest: object, kernel: object) -> registry.CheckResult:
            ran.append((check.name, guest.label))  # type: ignore[attr-defined]
            return registry.CheckResult(check.name, True, "")
        return dataclasses.replace(check, run=fn)

    monkeypatch.setattr(registry, "CHECKS", {n: recorded(c) for n, c in CHECKS.items()})
    monkeypatch.setattr(registry, "why_skip", lambda name, kernel: None)
    main = _Guest("main", ran)
    got = registry.run_checks(main, None, last_use=True)  # type: ignore[arg-type]
    assert [r.name for r in got] == list(CHECKS)
    assert [n for n, _ in ran if n in RUN] == list(RUN)
    assert {guest for _, guest in ran} == {"main"}  # one boot serves them all


def _declared(path: Path) -> list[str]:
    """The names of the checks a module declares with @check(...), read from its source."""
    return [d.args[0].value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef) for d in node.decorator_list
            if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "check"
            and isinstance(d.args[0], ast.Constant) and isinstance(d.args[0].value, str)]


def test_every_declared_check_is_found_without_a_list() -> None:
    import harness.checks
    from harness.checks import CHECKS

    package = Path(harness.checks.__file__).parent
    by_module = {f"harness.checks.{p.stem}": _declared(p) for p in sorted(package.glob("*.py"))}
    assert sorted(n for names in by_module.values() for n in names) == sorted(CHECKS)
    for name, c in CHECKS.items():
        assert name in by_module[c.run.__module__], (name, c.run.__module__)
    init = (package / "__init__.py").read_text()
    assert not [m for m, names in by_module.items() if names and f'"{m.rsplit(".")[-1]}"' in init]


def test_a_check_is_named_by_the_registry_once() -> None:
    """A check's module writes its name once, in @check: its function returns an Outcome, and
    the registry makes that the CheckResult of the name (calling the function too)."""
    import harness.checks
    from harness.checks import CHECKS, CheckResult, dmesg
    from harness.guest.console import CommandResult

    class Quiet:
        def run(self, cmd: str, timeout: float = 10.0, *,
                allow_kernel_errors: bool = False) -> CommandResult:
            return CommandResult(cmd=cmd, status=1, output="")

    got = CHECKS["dmesg_clean"].run(Quiet(), None)  # type: ignore[arg-type]
    assert got == CheckResult("dmesg_clean", True, "no WARNING, BUG, Oops or Call Trace")
    assert dmesg.dmesg_clean(Quiet(), None) == got  # type: ignore[arg-type]
    for path in Path(harness.checks.__file__).parent.glob("*.py"):
        if path.name != "registry.py":
            assert "CheckResult(" not in path.read_text(), path.name


def test_every_check_names_its_pure_evaluator_and_a_unit_test_calls_it() -> None:
    """The rule of harness/checks/__init__.py, held: a check declares its pure evaluator, which
    a unit test calls on recorded output (test_module still judges where it asks)."""
    from harness.checks import CHECKS

    tests = "\n".join(p.read_text() for p in Path(__file__).parents[1].rglob("test_*.py"))
    assert [n for n, c in CHECKS.items() if c.evaluate is None] == ["test_module"]
    for name, c in CHECKS.items():
        if c.evaluate is not None:
            fn = c.evaluate.__name__
            assert re.search(rf"\b{fn}\(", tests), f"{name}: no unit test calls {fn}"
