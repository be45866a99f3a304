from __future__ import annotations

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
])
def test_bad_input_is_one_line_naming_the_fix(argv: list[str], message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltoboot: error: ") and message in err
    assert err.count("\n") == 1
