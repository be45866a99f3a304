"""Every check, on every kernel under test (--arch, --lto, --kernel-src, --kernel), from one boot
each; with ltoboot_fetched_copy, also on the primary kernel fetched back over HTTP."""

from __future__ import annotations

import pytest

from harness.checks import CHECKS, run_check
from harness.guest.session import Guest
from harness.kernel.model import Kernel

pytestmark = pytest.mark.boot


@pytest.mark.parametrize("check_name", list(CHECKS))
def test_check(guest: Guest, kernel: Kernel, check_name: str) -> None:
    result = run_check(check_name, guest, kernel)
    if result.skipped:
        pytest.skip(result.summary)
    assert result.passed, f"{result.summary}\n{result.evidence}\nconsole log: {guest.log}"
