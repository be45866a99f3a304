"""The per-kernel report: what `ltoboot run` prints, in the shape of the seed Tested-by mail."""

from __future__ import annotations

from harness.base.progress import duration
from harness.checks import LTO_GREP, Verdict
from harness.kernel.model import Kernel, lto_title
from harness.reports.results import KernelReport

SHOWN_DROPPED = 12  # of the base's options Kconfig did not keep, the text names this many


def config_lines(k: Kernel) -> list[str]:
    """What the build added to a tester's base config (--config), what it could not, what it
    cleared from a base file and what of the file Kconfig did not keep (the first
    SHOWN_DROPPED named: a distribution's config loses dozens under clang)."""
    if "config_base" not in k.extra:
        return []
    added = k.extra.get("config_added", "").split()
    lines = [f"config: {k.extra['config_base']}, with {len(added)} option"
             f"{'' if len(added) == 1 else 's'} added by ltoboot"
             + (f": {' '.join(added)}" if added else "")]
    if k.extra.get("config_not_added"):
        lines.append(f"config: could not add {k.extra['config_not_added']} (the checks that "
                     "need them SKIP)")
    if k.extra.get("config_cleared"):
        lines.append("config: cleared from the base by ltoboot (Kconfig's default instead): "
                     f"{k.extra['config_cleared']}")
    if dropped := k.extra.get("config_dropped", "").split():
        more = len(dropped) - SHOWN_DROPPED
        lines.append(f"config: Kconfig did not keep {len(dropped)} option"
                     f"{'' if len(dropped) == 1 else 's'} the base set (re-evaluated with "
                     f"{k.compiler} and this machine's tools): "
                     + " ".join(dropped[:SHOWN_DROPPED])
                     + (f" and {more} more (all of them: ltoboot tested-by --format json)"
                        if more > 0 else ""))
    return lines


def render(rep: KernelReport) -> str:
    k = rep.kernel
    head = f"== {rep.label}"
    if k is not None:
        head += f": Linux {k.release}, {lto_title(k.lto)}, {k.compiler}"
    lines = [head + " =="]
    if k is not None:
        lines.append(f"source: {k.source}")
        lines += config_lines(k)
    if rep.error:
        lines += ["FAILED before any check could run:", rep.error]
        return "\n".join(lines)
    if version := rep.evidence("proc_version"):
        lines += ["# cat /proc/version", version]
    if lto := rep.evidence("lto_config"):
        lines += [f"# {LTO_GREP}", lto]
    width = max((len(r.name) for r in rep.results), default=0)
    lines.append("checks:")
    for r in rep.results:
        lines.append(f"  {r.verdict}  {r.name:<{width}}  {r.summary}")
        if r.evidence and (not r.passed or r.name == "initcall_order") \
                and r.name not in ("proc_version", "lto_config"):
            lines += [f"        | {e}" for e in r.evidence.splitlines()[-30:]]
    facts = []
    if rep.boot_seconds is not None:
        facts.append(f"boot {rep.boot_seconds:.1f}s ({rep.accel_reason or rep.accel})")
    if k is not None and k.build_seconds is not None:
        facts.append(f"build {duration(k.build_seconds)}")
    lines.append("; ".join(facts))
    if rep.console_log:
        lines.append(f"console log: {rep.console_log}")
    if k is not None and k.build_log is not None:
        lines.append(f"build log: {k.build_log}")
    n_pass = sum(r.verdict is Verdict.PASS for r in rep.results)
    n_skip = sum(r.verdict is Verdict.SKIP for r in rep.results)
    lines.append(f"{'PASSED' if rep.passed else 'FAILED'}: {n_pass}/{len(rep.results)} checks"
                 + (f", {n_skip} skipped" if n_skip else ""))
    return "\n".join(lines)
