"""JUnit XML of a run's reports (`--junit FILE`): a test case per kernel and check, as CI
systems read them: SKIP as skipped with its reason, FAIL as failure with its evidence, a
kernel that did not build or boot as one failed case."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from harness.base import cache
from harness.checks import Verdict
from harness.reports.results import KernelReport


def document(reports: Sequence[KernelReport], suite: str = "ltoboot") -> str:
    root = ET.Element("testsuites")
    for rep in reports:
        cases = rep.results if not rep.error else []
        s = ET.SubElement(root, "testsuite", name=f"{suite}.{rep.label}",
                          tests=str(max(1, len(cases))),
                          failures=str(1 if rep.error else
                                       sum(r.verdict is Verdict.FAIL for r in cases)),
                          skipped=str(sum(r.verdict is Verdict.SKIP for r in cases)))
        if rep.error:
            case = ET.SubElement(s, "testcase", classname=f"{suite}.{rep.label}", name="boot")
            ET.SubElement(case, "failure", message=rep.error.splitlines()[0]).text = rep.error
            continue
        for r in cases:
            case = ET.SubElement(s, "testcase", classname=f"{suite}.{rep.label}", name=r.name)
            if r.verdict is Verdict.SKIP:
                ET.SubElement(case, "skipped", message=r.summary)
            elif r.verdict is Verdict.FAIL:
                ET.SubElement(case, "failure", message=r.summary).text = r.evidence or r.summary
            elif r.evidence:
                ET.SubElement(case, "system-out").text = r.evidence
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") \
        + "\n"


def write(reports: Sequence[KernelReport], path: Path, suite: str = "ltoboot") -> None:
    cache.write_atomic(path, document(reports, suite))
