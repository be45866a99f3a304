"""What we check inside a booted guest. One registry serves `ltoboot run` and pytest alike.

Each check has a pure evaluator over what the guest printed (unit-tested on recorded output)
and a thin function that asks the guest. Checks register in the order of the modules below.
"""

from __future__ import annotations

import importlib

from harness.checks.basic import LTO_GREP, lto_config_as, proc_version
from harness.checks.registry import CHECKS, Check, CheckResult, check, run_check, run_checks

# Registration order is run and report order; dmesg is judged last, after what the others did.
for _module in ("basic", "lto", "build_outputs", "modules", "ftrace", "vdso", "kvm", "pci",
                "cfi", "crash", "efi", "dmesg"):
    importlib.import_module(f"harness.checks.{_module}")

__all__ = ["CHECKS", "LTO_GREP", "Check", "CheckResult", "check", "lto_config_as",
           "proc_version", "run_check", "run_checks"]
