"""Initcall ordering: what ran (initcall_debug) and what the table says (System.map), compared
level by level between an LTO kernel and a non-LTO build of the same tree, config, toolchain.

LTO may reorder initcalls; scripts/generate_initcall_order.pl restores the link order. Names
are normalised so the two kernels compare: __initstub__kmod_<mod>__<ctr>_<line>_<fn><level>
(LTO's stub) and <fn> are the same initcall.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# Run order of the levels (include/asm-generic/vmlinux.lds.h: INIT_CALLS).
LEVELS = ("early", "0", "0s", "1", "1s", "2", "2s", "3", "3s", "4", "4s", "5", "5s",
          "rootfs", "6", "6s", "7", "7s")
_LEVEL = r"((?:early|rootfs|con|[0-9])s?)"
_TABLE = re.compile(rf"^[0-9a-f]+ \S __initcall__kmod_\S*?__\d+_\d+_(.*){_LEVEL}$")
_STUB = re.compile(rf"^__initstub__kmod_\S*?__\d+_\d+_(.*){_LEVEL}$")
# At the start of the message: a device's "pci 0000:00:00.0: calling  quirk_...", from the PCI
# fixups that initcall_debug also traces, is not an initcall
_CALLING = re.compile(r"(?:^|\] )calling  (\S+?)\+0x[0-9a-f]+/0x[0-9a-f]+ @ \d+")
_RETURNED = re.compile(
    r"initcall (\S+?)\+0x[0-9a-f]+/0x[0-9a-f]+ returned (-?\d+) after (\d+) usecs")


def normalise(symbol: str) -> str:
    """The initcall's function name, whatever LTO made of it."""
    name = symbol.split(".llvm.")[0]
    if m := _STUB.match(name):
        return m.group(1)
    return name


@dataclass
class Initcall:
    name: str  # normalised
    level: str = "?"
    ret: int | None = None
    usecs: int | None = None


def table(system_map: str) -> list[tuple[str, str]]:
    """(level, function) of every initcall in table order (System.map is sorted by address)."""
    out = []
    for line in system_map.splitlines():
        if m := _TABLE.match(line.strip()):
            out.append((m.group(2), m.group(1)))
    return [(lvl, fn) for lvl, fn in out if lvl != "con"]  # console initcalls run elsewhere


def ran(dmesg: str, levels_from: Iterable[tuple[str, str]] = ()) -> list[Initcall]:
    """Initcalls in the order they ran, with return values and durations; each gets its level
    from the kernel's own table (by first unused occurrence of its name)."""
    calls: list[Initcall] = []
    pending: dict[str, Initcall] = {}
    for line in dmesg.splitlines():
        if m := _CALLING.search(line):
            call = Initcall(normalise(m.group(1)))
            calls.append(call)
            pending[m.group(1)] = call
        elif (m := _RETURNED.search(line)) and m.group(1) in pending:
            call = pending.pop(m.group(1))
            call.ret, call.usecs = int(m.group(2)), int(m.group(3))
    where: dict[str, list[str]] = {}
    for lvl, fn in levels_from:
        where.setdefault(fn, []).append(lvl)
    for call in calls:
        if where.get(call.name):
            call.level = where[call.name].pop(0)
    return calls


def by_level(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for lvl, fn in pairs:
        out.setdefault(lvl, []).append(fn)
    return out


@dataclass
class Divergence:
    what: str  # "table" or "runtime"
    level: str
    index: int
    lto: list[str]  # a few names from the divergence on
    reference: list[str]


def first_divergences(what: str, lto: dict[str, list[str]], ref: dict[str, list[str]],
                      context: int = 3) -> list[Divergence]:
    out = []
    for lvl in sorted(set(lto) | set(ref), key=lambda v: LEVELS.index(v) if v in LEVELS else 99):
        a, b = lto.get(lvl, []), ref.get(lvl, [])
        if a == b:
            continue
        i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                 min(len(a), len(b)))
        lo = max(0, i - 1)
        out.append(Divergence(what, lvl, i, a[lo:i + context], b[lo:i + context]))
    return out


@dataclass
class Comparison:
    lto_label: str
    ref_label: str
    divergences: list[Divergence] = field(default_factory=list)
    only_lto: list[str] = field(default_factory=list)
    only_ref: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "<kernel>: fn returned -N"
    lto_calls: list[Initcall] = field(default_factory=list)
    ref_calls: list[Initcall] = field(default_factory=list)
    counts: tuple[int, int, int] = (0, 0, 0)  # table entries, ran (LTO), ran (reference)

    @property
    def identical(self) -> bool:
        return not self.divergences and not self.only_lto and not self.only_ref

    @property
    def error_mismatch(self) -> list[str]:
        """Initcalls that fail in one kernel and not the other, or with another errno. Errors
        in both (-ENODEV for hardware QEMU lacks) are reported, not held against LTO."""
        def failing(calls: list[Initcall]) -> dict[str, int]:
            return {x.name: x.ret for x in calls if x.ret is not None and x.ret < 0}

        a, b = failing(self.lto_calls), failing(self.ref_calls)
        return [f"{n}: {a.get(n, 0)} in {self.lto_label}, {b.get(n, 0)} in {self.ref_label}"
                for n in sorted(set(a) | set(b)) if a.get(n, 0) != b.get(n, 0)]

    @property
    def passed(self) -> bool:
        return self.identical and not self.error_mismatch

    def summary(self) -> str:
        n_table, n_lto, _ = self.counts
        if self.identical:
            errors = (f"; errors differ: {', '.join(self.error_mismatch)}"
                      if self.error_mismatch else "")
            return (f"initcall order identical to {self.ref_label}: {n_table} table entries, "
                    f"{n_lto} ran, in {len(by_level((c.level, c.name) for c in self.lto_calls))}"
                    " levels" + errors)
        firsts = ", ".join(f"{d.what} level {d.level} at #{d.index}: {d.lto[1:2] or d.lto[:1]}"
                           f" vs {d.reference[1:2] or d.reference[:1]}"
                           for d in self.divergences[:3])
        return (f"initcall order differs from {self.ref_label}: {len(self.divergences)} "
                f"divergent level(s)" + (f"; first {firsts}" if firsts else "")
                + (f"; ran only in LTO: {len(self.only_lto)}" if self.only_lto else "")
                + (f"; ran only in {self.ref_label}: {len(self.only_ref)}"
                   if self.only_ref else ""))

    def details(self) -> str:
        lines = []
        for d in self.divergences:
            lines.append(f"{d.what} level {d.level}, first divergence at #{d.index}:")
            lines.append(f"  {self.lto_label:>14}: {' '.join(d.lto)}")
            lines.append(f"  {self.ref_label:>14}: {' '.join(d.reference)}")
        if self.only_lto:
            lines.append(f"ran only in {self.lto_label}: {' '.join(self.only_lto)}")
        if self.only_ref:
            lines.append(f"ran only in {self.ref_label}: {' '.join(self.only_ref)}")
        lines += [f"returned an error: {e}" for e in self.errors]
        lines += [f"errors differ: {e}" for e in self.error_mismatch]
        return "\n".join(lines)


def compare(lto_map: str, lto_dmesg: str, ref_map: str, ref_dmesg: str, *,
            lto_label: str = "LTO", ref_label: str = "no LTO") -> Comparison:
    lto_table, ref_table = table(lto_map), table(ref_map)
    lto_calls, ref_calls = ran(lto_dmesg, lto_table), ran(ref_dmesg, ref_table)
    c = Comparison(lto_label, ref_label, lto_calls=lto_calls, ref_calls=ref_calls,
                   counts=(len(lto_table), len(lto_calls), len(ref_calls)))
    c.divergences = first_divergences("table", by_level(lto_table), by_level(ref_table))
    c.divergences += first_divergences("runtime", by_level((x.level, x.name) for x in lto_calls),
                                       by_level((x.level, x.name) for x in ref_calls))
    lto_names, ref_names = {x.name for x in lto_calls}, {x.name for x in ref_calls}
    c.only_lto = sorted(lto_names - ref_names)
    c.only_ref = sorted(ref_names - lto_names)
    for label, calls in ((lto_label, lto_calls), (ref_label, ref_calls)):
        c.errors += [f"{label}: {x.name} returned {x.ret}" for x in calls if x.ret and x.ret < 0]
    return c


def durations_table(c: Comparison, top: int = 10) -> str:
    """The slowest initcalls of the LTO kernel and the biggest LTO-vs-reference differences."""
    ref = {x.name: x.usecs for x in c.ref_calls if x.usecs is not None}
    timed = [x for x in c.lto_calls if x.usecs is not None]
    lines = [f"slowest initcalls ({c.lto_label}, usecs; {c.ref_label} alongside):"]
    for x in sorted(timed, key=lambda x: -(x.usecs or 0))[:top]:
        lines.append(f"  {x.usecs:>8} {ref.get(x.name, '-'):>8}  {x.name} [{x.level}]")
    diffs = [(x.usecs - ref[x.name], x) for x in timed
             if x.name in ref and x.usecs is not None and ref[x.name] is not None]
    lines.append(f"biggest differences ({c.lto_label} minus {c.ref_label}, usecs):")
    for d, x in sorted(diffs, key=lambda t: -abs(t[0]))[:top]:
        lines.append(f"  {d:>+8}  {x.name} [{x.level}]")
    return "\n".join(lines)


def durations_svg(c: Comparison, path: Path, top: int = 15) -> Path:
    """A bar chart of the slowest initcalls, LTO next to the reference, as a plain SVG file."""
    ref = {x.name: x.usecs or 0 for x in c.ref_calls}
    rows = sorted((x for x in c.lto_calls if x.usecs is not None),
                  key=lambda x: -(x.usecs or 0))[:top]
    peak = max([x.usecs or 0 for x in rows] + [ref.get(x.name, 0) for x in rows] + [1])
    label_w, bar_w, row_h = 300, 480, 26
    width = label_w + bar_w + 180  # room for the numbers after the longest bar
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{row_h * len(rows) + 50}" font-family="monospace" font-size="12">',
             f'<text x="10" y="18">slowest initcalls, usecs: {html.escape(c.lto_label)} '
             f'(blue) vs {html.escape(c.ref_label)} (grey)</text>']
    for i, x in enumerate(rows):
        y = 30 + i * row_h
        a, b = (x.usecs or 0) * bar_w / peak, ref.get(x.name, 0) * bar_w / peak
        parts += [f'<text x="10" y="{y + 14}">{html.escape(x.name[:40])}</text>',
                  f'<rect x="{label_w}" y="{y}" width="{a:.1f}" height="10" fill="#3572b0"/>',
                  f'<rect x="{label_w}" y="{y + 11}" width="{b:.1f}" height="10" fill="#999"/>',
                  f'<text x="{label_w + max(a, b) + 5:.1f}" y="{y + 14}">{x.usecs}'
                  f' / {ref.get(x.name, "-")}</text>']
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path
