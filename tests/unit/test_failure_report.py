"""When a series fails and bisecting it names a patch: the report a tester sends (a reply to
that patch, to its author and everyone it went to, with no trailer of any kind: b4, offline,
takes nothing from it, though a kernel console prints lines shaped like trailers), and the
block the CLI prints after the Tested-by block."""

from __future__ import annotations

import mailbox
import re
from pathlib import Path

from harness.mail import series
from harness.reports.tested_by import render_findings
from harness.runs.culprit import Finding, Outcome, PatchRef, Step
from tests import mailcorpus
from tests.unit.test_mail_corpus import TESS

# a panic's console as a check's evidence: lines b4 would read as trailers if they stood bare
CONSOLE = """\
[    2.101234] lkdtm: Performing direct entry CFI_FORWARD_PROTO
[    2.101567] CFI failure at lkdtm_CFI_FORWARD_PROTO+0x3b/0x50 (target: lkdtm_increment_int)
[    2.101890] ------------[ cut here ]------------
CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.192 #1
RIP: 0010:lkdtm_do_action+0x10/0x20
Call Trace:
 <TASK>
Reported-by: x <x@y>
Reported-by: Kernel Test Robot <lkp@intel.com>
Fixes: 0123456789ab ("main: return 0 for the world")
 </TASK>"""
FACTS: dict[str, object] = {
    "passed": False, "tested_by": f"{TESS[0]} <{TESS[1]}>", "compiler": "clang 19",
    "series": {"base_described": "base", "base": "0123456789abcdef"}}
CONFIG = ["config: tinyconfig, with 1 option added by ltoboot: CONFIG_LKDTM=y"]
REPRODUCE = "ltoboot tested-by --series <id> --kernel-src ~/linux --arch x86_64"
# what b4 reads as a trailer in a reply (b4's LoreMessage.find_trailers)
TRAILER = re.compile(r"^\s*(\w\S+):\s+(\S.*)")


def ref(s: series.Series, index: int) -> PatchRef:
    p = s.patches[index - 1]
    return PatchRef(index, p.number, p.title, p.sender, p.message_id)


def culprit(s: series.Series, index: int, arch: str = "x86_64", lto: str = "thin"
            ) -> dict[str, object]:
    """A finding as bisecting a 2-patch series finds it: the head fails cfi, the base passes,
    patch `index` is the first bad one."""
    patch = ref(s, index)
    steps = [Step(2, "bad", ["cfi"], "cfi: CFI not enforced", CONSOLE, None, "cached", 1.43),
             Step(0, "good", [], "passed cfi", "", 250.4, "nothing", 1.31)]
    if index == 2:
        steps.append(Step(1, "good", [], "passed cfi", "", 12.0, "the base's build", 1.29))
    else:
        steps.append(Step(1, "bad", ["cfi"], "cfi: CFI not enforced", CONSOLE, 11.0,
                          "the base's build", 1.3))
    before = "the base" if index == 1 else f"patches 1-{index - 1} applied"
    return Finding(arch, f"{arch}-{lto}", CONFIG, ["cfi"], Outcome.CULPRIT,
                   f"patch {patch.number} \"{patch.subject}\" breaks cfi on {arch}: {before} "
                   f"passed, with patch {patch.number} it fails", base="v6.1",
                   base_commit="0123456789abcdef" * 2, patch=patch,
                   summary="cfi: CFI not enforced", excerpt=CONSOLE, steps=steps,
                   seconds=301.2, reproduce=REPRODUCE).as_dict()


def trailers_of(mbx: Path) -> list[list[str]]:
    """Each patch's trailer-shaped lines in what b4 wrote for git am."""
    texts = [bytes(m.get_payload(decode=True)).decode() for m in mailbox.mbox(mbx)]
    return [[line for line in text.partition("\n---\n")[0].splitlines()
             if TRAILER.match(line)] for text in texts]


# -- the block the CLI prints ----------------------------------------------------------------

def test_a_culprit_is_shown_with_its_evidence_steps_and_command(tmp_path: Path) -> None:
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    lines = render_findings([culprit(s, 2)]).splitlines()
    assert lines[:3] == [
        "x86_64-thin: culprit",
        "  patch 2/2 \"kbuild: build extra.o\" breaks cfi on x86_64: patches 1-1 applied "
        "passed, with patch 2/2 it fails",
        f"  culprit: patch 2/2 \"kbuild: build extra.o\" by Jörg Rödel <joro@example.org>, "
        f"Message-ID {s.patches[1].message_id}"]
    assert lines[3] == "  failed: cfi: CFI not enforced"
    assert lines[4:15] == [f"       | {line}" for line in CONSOLE.splitlines()]
    assert lines[15:] == [
        "  base: v6.1 (0123456789ab)", f"  {CONFIG[0]}", "  steps:",
        "    patches   verdict  failed  build   boot",
        "    head      bad      cfi     cached  1.4s",
        "    base      good     -       4m10s   1.3s",
        "    1-1 of 2  good     -       12.0s   1.3s",
        "  bisected in 5m01s", f"  reproduce: {REPRODUCE}"]


def test_the_excerpt_is_the_end_of_the_evidence_without_control_characters() -> None:
    long = "\n".join(f"[ {n}.0] line {n}" for n in range(40)) + "\n\x1b[31mpanic\x1b[0m\r"
    f = Finding("x86_64", "x86_64-thin", [], ["boot"], Outcome.CULPRIT, "s",
                patch=PatchRef(1, "1/1", "x: y", "A <a@example.org>", ""),
                summary="boot failed: panic", excerpt=long).as_dict()
    text = render_findings([f])
    shown = [line for line in text.splitlines() if line.startswith("       | ")]
    assert len(shown) == 25 and shown[-1] == "       | panic"
    assert "no Message-ID" in text and "\x1b" not in text and "\r" not in text


def test_a_base_that_fails_too_is_said_with_its_evidence() -> None:
    f = Finding("arm64", "arm64-thin", CONFIG, ["cfi"], Outcome.BASE,
                "the base already fails cfi on arm64: not this series", base="v6.1",
                base_commit="fedcba9876543210", base_failed=["cfi"],
                steps=[Step(2, "bad", ["cfi"], "cfi: head", "head's", None, "cached", 2.0),
                       Step(0, "bad", ["cfi"], "cfi: CFI not enforced", "base's console",
                            None, "cached", 2.1)],
                seconds=4.0, reproduce=REPRODUCE).as_dict()
    text = render_findings([f])
    assert text.splitlines()[:4] == [
        "arm64-thin: base", "  the base already fails cfi on arm64: not this series",
        "  failed: cfi: CFI not enforced", "       | base's console"]
    assert "  base: v6.1 (fedcba987654), fails cfi too" in text
    assert "culprit:" not in text and "    base     bad      cfi     cached  2.1s" in text


def test_an_unresolved_bisect_names_its_candidates_and_why(tmp_path: Path) -> None:
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    f = Finding("x86_64", "x86_64-thin", CONFIG, ["cfi"], Outcome.UNRESOLVED,
                "steps that could not answer leave several patches: the first bad one is one "
                "of 1/2, 2/2", base="v6.1", candidates=[ref(s, 1), ref(s, 2)],
                steps=[Step(2, "bad", ["cfi"], "cfi: CFI not enforced", "", None, "cached",
                            1.4),
                       Step(0, "good", [], "passed cfi", "", None, "cached", 1.3),
                       Step(1, "skip", [], "cannot answer: cfi: SKIP (no LKDTM)", "", 30.0,
                            "x", 1.2)],
                seconds=40.0).as_dict()
    text = render_findings([f])
    assert [line for line in text.splitlines() if "candidate:" in line] == [
        f"  candidate: patch {p.number} \"{p.title}\" by Jörg Rödel <joro@example.org>, "
        f"Message-ID {p.message_id}" for p in s.patches]
    assert "    1-1 of 2  skip     -       30.0s   1.2s  (cannot answer: cfi: SKIP (no LKDTM))" \
        in text
    assert "reproduce:" not in text and "  failed: cfi: CFI not enforced" in text
