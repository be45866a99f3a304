"""Initcall comparison of two booted kernels, with its report files (table and SVG)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from harness.base import cache
from harness.base.errors import UsageError
from harness.checks import initcall_order
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel


@dataclass(frozen=True)
class InitcallReport:
    comparison: initcall_order.Comparison
    directory: Path  # durations.txt, durations.svg, details.txt


def compare_guests(lto: tuple[Kernel, GuestProtocol],
                   ref: tuple[Kernel, GuestProtocol]) -> InitcallReport:
    (k1, g1), (k2, g2) = lto, ref
    for k in (k1, k2):
        if k.system_map is None or not Path(k.system_map).is_file():
            raise UsageError(f"{k.label}: the initcall comparison needs System.map")
    assert k1.system_map is not None and k2.system_map is not None
    c = initcall_order.compare(k1.system_map.read_text(), g1.run("dmesg").output,
                          k2.system_map.read_text(), g2.run("dmesg").output,
                          lto_label=k1.label, ref_label=k2.label)
    d = cache.cache_root() / "reports" / f"initcalls-{k1.label}-{time.strftime('%Y%m%d-%H%M%S')}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "durations.txt").write_text(initcall_order.durations_table(c) + "\n")
    (d / "details.txt").write_text(c.summary() + "\n" + c.details() + "\n")
    initcall_order.durations_svg(c, d / "durations.svg")
    return InitcallReport(c, d)
