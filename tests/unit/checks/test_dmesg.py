"""dmesg_clean and the module listing, on recorded output."""

from __future__ import annotations

from harness.checks import basic as checks
from harness.checks import dmesg as dmesg_check


def test_dmesg_and_modules() -> None:
    dmesg = "[ 0.1] ok\n[ 0.2] WARNING: CPU: 0 PID: 1 at x.c:1 f\n[ 0.3] Call Trace:\n"
    assert len(dmesg_check.dmesg_problems(dmesg)) == 2
    mods = "test_module 16384 0 - Live 0x0000000000000000\n"
    assert checks.module_listed(mods, "test_module")
    assert not checks.module_listed(mods, "test")
