"""The Tested-by block: what a tester pastes into a reply, per arch, the tag last and only when
every check passed; and the same facts as data (--format json)."""

from __future__ import annotations

from harness.checks import LTO_GREP, Verdict
from harness.kernel.model import lto_title
from harness.reports.results import KernelReport
from harness.reports.text import config_lines


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
            "checks": [{"name": c.name, "verdict": c.verdict.value, "passed": c.passed,
                        "skipped": c.skipped, "summary": c.summary,
                        **({} if c.passed else {"evidence": c.evidence})} for c in r.results],
            "console_log": r.console_log,
            "config": config_lines(r.kernel) if r.kernel else [],
        } for r in reports],
    }


# how a verdict reads in the block a tester pastes (lower case but a FAIL, which must stand out)
MARKS = {Verdict.PASS: "ok  ", Verdict.SKIP: "skip", Verdict.FAIL: "FAIL", Verdict.ERROR: "ERR "}


def render_tested_by(facts: dict[str, object]) -> str:
    """The block to paste into a reply: per arch what a tester would paste, then the tag."""
    arches = facts["arches"]
    assert isinstance(arches, list)
    lines = [f"Booted {facts['tree']} (Linux {facts['release']}), built with "
             f"{facts['compiler']}, in QEMU:", ""]
    for a in arches:
        status = "all checks passed" if a["passed"] else "FAILED"
        boot = f", booted in {a['boot_seconds']:.1f}s ({a['accel']})" if a["boot_seconds"] else ""
        lines.append(f"{a['arch']}, {lto_title(a['lto'])}{boot}: {status}")
        lines += a.get("config", [])
        if a["proc_version"]:
            lines += ["# cat /proc/version", a["proc_version"]]
        if a["lto_config"]:
            lines += [f"# {LTO_GREP}", a["lto_config"]]
        if a["error"]:
            lines.append(a["error"])
        for c in a["checks"]:
            verdict = Verdict(c["verdict"])
            lines.append(f"  {MARKS[verdict]} {c['name']}: {c['summary']}")
            if verdict is Verdict.FAIL and c.get("evidence"):
                lines += [f"       | {e}" for e in str(c["evidence"]).splitlines()[-15:]]
        if not a["passed"] and a["console_log"]:
            lines.append(f"  console log: {a['console_log']}")
        lines.append("")
    if facts["passed"]:
        lines.append(f"Tested-by: {facts['tested_by']}")
    else:
        lines.append("Not all checks passed: no Tested-by.")
    return "\n".join(lines)
