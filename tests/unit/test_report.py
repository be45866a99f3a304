"""The reports: the Tested-by block ends with the tag only when all passed, the run report shows
what the seed mail shows, counts agree with the lists, and every report says the same verdict."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

from harness.checks import CheckResult, Verdict
from harness.kernel.model import Kernel
from harness.reports import junit, kcidb
from harness.reports.results import KernelReport
from harness.reports.tested_by import facts_for_tested_by, render_tested_by
from harness.reports.text import render

VERSION = ("Linux version 6.1.192 (ltoboot@ltoboot) (Debian clang version 19.1.7 (3~deb12u1), "
           "Debian LLD 19.1.7) #1 SMP Mon Nov 23 20:12:23 UTC 2026")
LTO = "CONFIG_LTO=y\nCONFIG_LTO_CLANG=y\n# CONFIG_LTO_NONE is not set\nCONFIG_LTO_CLANG_THIN=y"


def report(arch: str, ok: bool) -> KernelReport:
    k = Kernel(arch=arch, lto="thin", release="6.1.192", image=Path("/k/Image"),
               config=Path("/k/.config"), system_map=None, modules=None, build_dir=None,
               source_tree=None, compiler="Debian clang version 19.1.7 (3~deb12u1)",
               linker="Debian LLD 19.1.7", llvm_major=19,
               source="linux-source-6.1.tar.xz (sha256 4d415b3d3648)", key="k")
    results = [CheckResult("proc_version", True, "clang version 19.1.7, LLD 19.1.7", VERSION),
               CheckResult("lto_config", True, "ThinLTO", LTO),
               CheckResult("cfi", ok, "CFI failure at x" if ok else "CFI not enforced",
                           "" if ok else "[ 1.0] lkdtm: FAIL: survived")]
    return KernelReport(label=f"{arch}-thin", kernel=k, accel="tcg", boot_seconds=1.9,
                        console_log=f"/logs/{arch}.log", results=results)


def test_tested_by_block_ends_with_the_tag_only_when_all_passed() -> None:
    good = render_tested_by(facts_for_tested_by([report("arm64", True), report("x86_64", True)],
                                            "A U Thor", "a@example.org"))
    assert good.splitlines()[-1] == "Tested-by: A U Thor <a@example.org>"
    assert good.count("# cat /proc/version") == 2 and VERSION in good
    assert "# zgrep 'LTO[_=]' /proc/config.gz\nCONFIG_LTO=y" in good
    assert "linux-source-6.1.tar.xz (sha256 4d415b3d3648)" in good.splitlines()[0]
    bad = render_tested_by(facts_for_tested_by([report("arm64", True), report("x86_64", False)],
                                           "A U Thor", "a@example.org"))
    assert "Tested-by:" not in bad
    assert "FAIL cfi: CFI not enforced" in bad and "lkdtm: FAIL: survived" in bad
    assert "console log: /logs/x86_64.log" in bad


def test_run_report_shows_what_the_seed_mail_shows() -> None:
    text = render(report("x86_64", True))
    assert "# cat /proc/version\n" + VERSION in text
    assert text.splitlines()[-1] == "PASSED: 3/3 checks"


def test_the_count_agrees_with_the_list() -> None:
    rep = report("x86_64", False)
    rep.results.append(CheckResult("probe_modules", True, "skipped: no build directory",
                                   skipped=True))
    lines = render(rep).splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("  ")
              and line.split()[0] in ("PASS", "FAIL", "SKIP")]
    assert listed == ["PASS", "PASS", "FAIL", "SKIP"]
    assert lines[-1] == "FAILED: 2/4 checks, 1 skipped"


def test_every_report_says_the_verdict_of_the_result() -> None:
    """One Verdict, worked out by CheckResult.verdict alone, read by the text, JUnit, KCIDB
    and the Tested-by block."""
    rep = report("x86_64", False)
    rep.results.append(CheckResult("probe_modules", True, "skipped: no build directory",
                                   skipped=True))
    assert [r.verdict for r in rep.results] == [Verdict.PASS, Verdict.PASS, Verdict.FAIL,
                                                Verdict.SKIP]
    want = {r.name: r.verdict for r in rep.results}
    text = {line.split()[1]: line.split()[0] for line in render(rep).splitlines()
            if line.startswith("  ") and line.split()[0] in set(Verdict)}
    cases = ET.fromstring(junit.document([rep])).iter("testcase")
    xml = {c.get("name"): Verdict.SKIP if c.find("skipped") is not None else
           Verdict.FAIL if c.find("failure") is not None else Verdict.PASS for c in cases}
    assert rep.kernel is not None
    rep.kernel = dataclasses.replace(rep.kernel, extra={"prebuilt": "/k/Image"})  # no checkout
    doc = kcidb.document([rep], kcidb.Run(id="r", started=datetime(2026, 12, 1, tzinfo=UTC)),
                         list(want))
    statuses = {t["path"].removeprefix("ltoboot."): t["status"] for t in doc["tests"]}
    block = render_tested_by(facts_for_tested_by([rep], "A U Thor", "a@example.org"))
    marks = {line.split()[1].rstrip(":"): line.split()[0] for line in block.splitlines()
             if line.startswith("  ") and line.split()[1].rstrip(":") in want}
    assert text == xml == {n: statuses[n] for n in want} == want
    assert marks == {"proc_version": "ok", "lto_config": "ok", "cfi": "FAIL",
                     "probe_modules": "skip"}
