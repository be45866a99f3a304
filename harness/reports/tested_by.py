"""The Tested-by block: what a tester pastes into a reply, per arch, the tag last and only when
every check passed; and the same facts as data (--format json). When a series failed, the
block after it: what bisecting its patches found."""

from __future__ import annotations

import re
from typing import Any

from harness.base.progress import duration
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
            # config_lines names the first few: here, every option of the base not kept
            "config_dropped": r.kernel.extra.get("config_dropped", "").split()
            if r.kernel else [],
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


# -- when the series failed: what bisecting its patches found (harness/runs/culprit.py's
# Finding, as the dict its as_dict() gives: the reports stage reads no later stage's types) --

EXCERPT_LINES = 25  # of a failure's evidence: where a panic or a check's verdict shows


def items(finding: dict[str, object], key: str) -> list[Any]:
    """A list field of a finding (steps, candidates, config, checks), [] when it has none."""
    value = finding.get(key)
    return value if isinstance(value, list) else []


def culprit_of(finding: dict[str, object]) -> dict[str, Any] | None:
    """The patch a finding names (a CULPRIT's), None for any other outcome."""
    patch = finding.get("patch")
    return patch if isinstance(patch, dict) else None


def patch_count(finding: dict[str, object]) -> int:
    """How many patches the series has: the head is the first step a bisect runs (k = n);
    without steps, what the culprit's or a candidate's `k/n` says (0: not known)."""
    if steps := items(finding, "steps"):
        return max(int(s["k"]) for s in steps)
    named = [p for p in (culprit_of(finding), *items(finding, "candidates")) if p]
    return int(str(named[0]["number"]).partition("/")[2] or 0) if named else 0


def step_name(k: int, n: int) -> str:
    """A step as the tables name it: the base, the series' first k patches, the head."""
    return "base" if k == 0 else "head" if k == n else f"1-{k} of {n}"


def patch_line(p: dict[str, Any]) -> str:
    """A patch as a tester finds it in their mail: its number, title, author, Message-ID."""
    mid = f", Message-ID {p['message_id']}" if p.get("message_id") else ", no Message-ID"
    return f"{p['number']} \"{p['subject']}\" by {p['author']}{mid}"


def evidence(finding: dict[str, object]) -> tuple[str, str]:
    """(summary, excerpt) of what failed: the culprit's, else the first kernel seen failing
    (the base, when it fails too); empty when no step failed."""
    if finding.get("summary"):
        return str(finding["summary"]), str(finding.get("excerpt") or "")
    bad = sorted((s for s in items(finding, "steps") if s["verdict"] == "bad"),
                 key=lambda s: int(s["k"]))
    return (str(bad[0]["summary"]), str(bad[0]["excerpt"])) if bad else ("", "")


_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # a console's colours and cursor moves


def excerpt_lines(text: str) -> list[str]:
    """The end of a failure's evidence, a line each, without what a console prints that is
    no text (colours, a carriage return, other control characters)."""
    return ["".join(c for c in _ESCAPES.sub("", line) if c == "\t" or c.isprintable())
            for line in text.splitlines()[-EXCERPT_LINES:]]


def steps_table(finding: dict[str, object]) -> list[str]:
    """The steps in the order they ran: which kernel, its verdict, what failed, how long its
    build took (or that it was cached) and its boot; a skip says why it cannot answer."""
    steps = items(finding, "steps")
    if not steps:
        return []
    n = patch_count(finding)
    rows = [("patches", "verdict", "failed", "build", "boot", "")]
    for s in steps:
        build = "cached" if s["built_from"] == "cached" else \
            duration(s["build_seconds"]) if s["build_seconds"] is not None else "-"
        boot = f"{s['boot_seconds']:.1f}s" if s["boot_seconds"] is not None else "-"
        why = f"({s['summary']})" if s["verdict"] == "skip" and s["summary"] else ""
        rows.append((step_name(int(s["k"]), n), str(s["verdict"]),
                     ", ".join(s["failed"]) or "-", build, boot, why))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[5]]).rstrip()
            for r in rows]


def render_findings(findings: list[dict[str, object]]) -> str:
    """What bisecting a failed series' patches found, a block per arch: printed after the
    Tested-by block."""
    blocks = []
    for f in findings:
        lines = [f"{f['label']}: {f['outcome']}", f"  {f['said']}"]
        if (patch := culprit_of(f)) is not None:
            lines.append(f"  culprit: patch {patch_line(patch)}")
        lines += [f"  candidate: patch {patch_line(p)}" for p in items(f, "candidates")]
        summary, excerpt = evidence(f)
        if summary:
            lines.append(f"  failed: {summary}")
            lines += [f"       | {e}" for e in excerpt_lines(excerpt)]
        if f.get("base"):
            commit = str(f.get("base_commit") or "")[:12]
            also = ", ".join(items(f, "base_failed"))
            lines.append(f"  base: {f['base']}" + (f" ({commit})" if commit else "")
                         + (f", fails {also} too" if also else ""))
        lines += [f"  {c}" for c in items(f, "config")]
        if table := steps_table(f):
            lines += ["  steps:", *(f"    {row}" for row in table)]
        if f.get("seconds"):
            lines.append(f"  bisected in {duration(float(str(f['seconds'])))}")
        if f.get("reproduce"):
            lines.append(f"  reproduce: {f['reproduce']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
