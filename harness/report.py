"""The per-kernel report: what `ltoboot run` prints, in the shape of the seed Tested-by mail."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.build import LTO_NAMES, Kernel
from harness.checks import LTO_GREP, CheckResult
from harness.progress import duration


@dataclass
class KernelReport:
    label: str
    kernel: Kernel | None = None
    accel: str = ""
    accel_reason: str = ""
    boot_seconds: float | None = None
    console_log: str = ""
    results: list[CheckResult] = field(default_factory=list)
    error: str = ""  # build or boot failure: no checks ran

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.results) and all(r.passed for r in self.results)

    def evidence(self, check: str) -> str:
        return next((r.evidence for r in self.results if r.name == check), "")


def render(rep: KernelReport) -> str:
    k = rep.kernel
    head = f"== {rep.label}"
    if k is not None:
        head += f": Linux {k.release}, {LTO_NAMES.get(k.lto, k.lto)}, {k.compiler}"
    lines = [head + " =="]
    if k is not None:
        lines.append(f"source: {k.source}")
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
        verdict = "SKIP" if r.skipped else "PASS" if r.passed else "FAIL"
        lines.append(f"  {verdict}  {r.name:<{width}}  {r.summary}")
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
    n_pass = sum(r.passed and not r.skipped for r in rep.results)
    n_skip = sum(r.skipped for r in rep.results)
    lines.append(f"{'PASSED' if rep.passed else 'FAILED'}: {n_pass}/{len(rep.results)} checks"
                 + (f", {n_skip} skipped" if n_skip else ""))
    return "\n".join(lines)


def facts_for_tested_by(reports: list[KernelReport], name: str, email: str) -> dict[str, object]:
    """Everything a Tested-by reply states, as data (also what --format json prints)."""
    first = next((r.kernel for r in reports if r.kernel is not None), None)
    return {
        "tree": first.source if first else "",
        "release": first.release if first else "",
        "compiler": first.compiler if first else "",
        "passed": all(r.passed for r in reports) and bool(reports),
        "tested_by": f"{name} <{email}>",
        "arches": [{
            "arch": r.kernel.arch if r.kernel else r.label.split("-")[0],
            "lto": r.kernel.lto if r.kernel else "",
            "passed": r.passed,
            "error": r.error,
            "boot_seconds": round(r.boot_seconds, 2) if r.boot_seconds is not None else None,
            "accel": r.accel,
            "proc_version": r.evidence("proc_version"),
            "lto_config": r.evidence("lto_config"),
            "checks": [{"name": c.name, "passed": c.passed, "skipped": c.skipped,
                        "summary": c.summary,
                        **({} if c.passed else {"evidence": c.evidence})} for c in r.results],
            "console_log": r.console_log,
        } for r in reports],
    }


def render_tested_by(facts: dict[str, object]) -> str:
    """The block to paste into a reply: per arch what a tester would paste, then the tag."""
    arches = facts["arches"]
    assert isinstance(arches, list)
    lines = [f"Booted {facts['tree']} (Linux {facts['release']}), built with "
             f"{facts['compiler']}, in QEMU:", ""]
    for a in arches:
        status = "all checks passed" if a["passed"] else "FAILED"
        boot = f", booted in {a['boot_seconds']:.1f}s ({a['accel']})" if a["boot_seconds"] else ""
        lines.append(f"{a['arch']}, {LTO_NAMES.get(a['lto'], a['lto'])}{boot}: {status}")
        if a["proc_version"]:
            lines += ["# cat /proc/version", a["proc_version"]]
        if a["lto_config"]:
            lines += [f"# {LTO_GREP}", a["lto_config"]]
        if a["error"]:
            lines.append(a["error"])
        for c in a["checks"]:
            verdict = "skip" if c.get("skipped") else "ok  " if c["passed"] else "FAIL"
            lines.append(f"  {verdict} {c['name']}: {c['summary']}")
            if not c["passed"] and c.get("evidence"):
                lines += [f"       | {e}" for e in str(c["evidence"]).splitlines()[-15:]]
        if not a["passed"] and a["console_log"]:
            lines.append(f"  console log: {a['console_log']}")
        lines.append("")
    if facts["passed"]:
        lines.append(f"Tested-by: {facts['tested_by']}")
    else:
        lines.append("Not all checks passed: no Tested-by.")
    return "\n".join(lines)
