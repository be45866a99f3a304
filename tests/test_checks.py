"""Every check, on every kernel under test (--arch, --lto, --kernel-src), from one boot each."""

from __future__ import annotations

import pytest

from harness.build import Kernel
from harness.checks import CHECKS, run_check
from harness.guest import Guest

pytestmark = pytest.mark.boot


@pytest.mark.parametrize("check_name", list(CHECKS))
def test_check(guest: Guest, kernel: Kernel, check_name: str) -> None:
    result = run_check(check_name, guest, kernel)
    assert result.passed, f"{result.summary}\n{result.evidence}\nconsole log: {guest.log}"
