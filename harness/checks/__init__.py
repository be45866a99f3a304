"""What we check inside a booted guest. One registry serves `ltoboot run` and pytest alike.

Each check has a pure evaluator over what the guest printed (unit-tested on recorded output)
and a thin function that asks the guest, declared together with @check in the check's module
(harness/checks/registry.py). The modules are found here, none named; the checks run and are
reported in the order of harness/base/needs.py, whose row for each says what it needs.
"""

from __future__ import annotations

import importlib
import pkgutil

from harness.checks.basic import LTO_GREP, lto_config_as, proc_version
from harness.checks.registry import (
    CHECKS,
    Check,
    CheckResult,
    Outcome,
    Verdict,
    check,
    put_in_order,
    run_check,
    run_checks,
)

for _module in pkgutil.iter_modules(__path__, f"{__name__}."):
    importlib.import_module(_module.name)
put_in_order()  # dmesg_clean judged last, after what the others did

__all__ = ["CHECKS", "LTO_GREP", "Check", "CheckResult", "Outcome", "Verdict", "check",
           "lto_config_as", "proc_version", "run_check", "run_checks"]
