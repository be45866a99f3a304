"""When a series fails and bisecting it names a patch: the report a tester sends (a reply to
that patch, to its author and everyone it went to, with no trailer of any kind: b4, offline,
takes nothing from it, though a kernel console prints lines shaped like trailers), and the
block the CLI prints after the Tested-by block."""

from __future__ import annotations

import dataclasses
import email.utils
import mailbox
import re
from pathlib import Path

import pytest

from harness.mail import series
from harness.reports import reply
from harness.reports.tested_by import render_findings
from harness.runs.culprit import Finding, Outcome, PatchRef, Step
from tests import mailcorpus
from tests.unit.test_mail_corpus import TESS, b4_am, replies, thread_of

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
    return PatchRef(index, p.number, p.title, p.author, p.message_id)


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


THREADED = ["cover-thread-utf8.mbox", "no-cover-thread.mbox", "rfc-v3-qp.mbox"]


@pytest.mark.parametrize("shape", THREADED)
def test_the_report_answers_the_culprit_and_b4_takes_nothing_from_it(shape: str,
                                                                     tmp_path: Path) -> None:
    path = mailcorpus.CORPUS / shape
    s = series.read(path, tmp_path)
    text = reply.failure_report(s, [culprit(s, 2)], FACTS, *TESS)
    (msg,) = replies(text)
    patch = s.patches[1]
    assert email.utils.parseaddr(str(msg["From"])) == TESS
    assert [(a.display_name, a.addr_spec) for a in msg["To"].addresses] == [
        ("Jörg Rödel", "joro@example.org")]
    assert [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == [
        ("Mäx Maintainer", "max@example.org"), ("", "linux-kbuild@example.org"),
        ("Zoë Ångström", "zoe@example.org")]
    assert msg["Subject"] == f"Re: {patch.subject}" and "build extra.o" in msg["Subject"]
    assert str(msg["In-Reply-To"]).strip() == patch.message_id
    assert str(msg["References"]).split() == [*patch.references.split(), patch.message_id]
    # names in Unicode, RFC 2047 on the wire; the body 8bit, readable on the list
    assert "=?utf-8?" in text.lower() and "Tëster" not in text.split("\n\n")[0]
    assert msg["Content-Transfer-Encoding"] == "8bit"
    body = msg.get_content()
    assert body.startswith("Hi Jörg Rödel,\n")
    for said in ("cfi fails", "On x86_64 (ThinLTO, clang 19)", str(culprit(s, 2)["said"]),
                 "CFI not enforced", "| RIP: 0010:lkdtm_do_action+0x10/0x20",
                 "Applied onto v6.1 (0123456789ab)", f"| {CONFIG[0]}",
                 "head      bad      cfi     cached  1.4s", f"$ {REPRODUCE}"):
        assert said in body, said
    # no trailer of any kind: no line b4 reads as one, and b4's own reader finds none
    assert [line for line in body.splitlines() if TRAILER.match(line)] == []
    from b4 import LoreMessage

    assert LoreMessage.find_trailers(body, followup=True)[0] == []
    # b4 applies the thread with our report in it as it does without it, and says nothing of
    # trailers it ignored
    alone, _ = b4_am(thread_of(path), "", tmp_path / "alone")
    answered, said = b4_am(thread_of(path), text, tmp_path / "answered")
    assert trailers_of(answered) == trailers_of(alone)
    assert answered.read_bytes() == alone.read_bytes()
    assert "trailers ignored" not in said
    # the same report with its evidence bare: b4 would take its Fixes: for the patch, and
    # see the Reported-by: as a trailer of someone else's
    bare, said = b4_am(thread_of(path), text.replace("\n  | ", "\n"), tmp_path / "bare")
    assert trailers_of(bare)[1] == [*trailers_of(alone)[1],
                                    "Fixes: 0123456789ab (\"main: return 0 for the world\")"]
    assert "trailers ignored" in said and "lkp@intel.com" in said


def test_a_patch_without_a_message_id_gets_a_report_that_says_so(tmp_path: Path) -> None:
    s = series.read(mailcorpus.CORPUS / "crlf-no-msgid.mbox", tmp_path)
    (msg,) = replies(reply.failure_report(s, [culprit(s, 1)], FACTS, *TESS))
    assert not msg["In-Reply-To"] and not msg["References"]
    assert msg["Subject"] == "Re: [PATCH 1/2] main: return 1 for the wörld"
    assert [a.addr_spec for a in msg["To"].addresses] == ["joro@example.org"]
    body = msg.get_content()
    assert body.count("without a Message-ID") == 1
    assert "breaks cfi on x86_64: the base passed" in body


def test_two_arches_naming_one_patch_share_a_message(tmp_path: Path) -> None:
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    text = reply.failure_report(s, [culprit(s, 2), culprit(s, 2, "arm64", "full")], FACTS,
                                *TESS)
    assert not text.startswith("From ")  # one message, not an mbox
    (msg,) = replies(text)
    body = msg.get_content()
    assert "On x86_64 (ThinLTO, clang 19)" in body and "On arm64 (full LTO, clang 19)" in body
    assert str(msg["In-Reply-To"]).strip() == s.patches[1].message_id


def test_two_culprits_are_an_mbox_of_two_messages(tmp_path: Path) -> None:
    path = mailcorpus.CORPUS / "no-cover-thread.mbox"
    s = series.read(path, tmp_path)
    base = Finding("riscv64", "riscv64-thin", CONFIG, ["cfi"], Outcome.BASE,
                   "the base already fails cfi on riscv64: not this series").as_dict()
    text = reply.failure_report(s, [culprit(s, 2, "arm64"), base, culprit(s, 1)], FACTS,
                                *TESS)
    messages = replies(text)
    assert [str(m["In-Reply-To"]).strip() for m in messages] == [
        p.message_id for p in s.patches]  # in the series' order
    assert ["On x86_64" in m.get_content() for m in messages] == [True, False]
    assert all("riscv64" not in m.get_content() for m in messages)
    answered, said = b4_am(thread_of(path), text, tmp_path / "answered")
    assert answered.read_bytes() == b4_am(thread_of(path), "", tmp_path / "alone")[0] \
        .read_bytes()
    assert "trailers ignored" not in said


def test_any_line_shaped_like_a_trailer_stands_behind_a_bar(tmp_path: Path) -> None:
    """Not only the evidence: a sentence or summary that starts `Name: value` (a check's
    words, an address in them) is shown so b4 cannot read it as a trailer."""
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    f = culprit(s, 2) | {"said": "Fixes: 0123456789ab (\"x\") by A <a@example.org>",
                         "summary": "", "steps": [], "config": []}
    body = replies(reply.failure_report(s, [f], FACTS, *TESS))[0].get_content()
    assert "\n  | Fixes: 0123456789ab" in body
    from b4 import LoreMessage

    assert LoreMessage.find_trailers(body, followup=True)[0] == []


def test_no_culprit_no_report(tmp_path: Path) -> None:
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    base = Finding("x86_64", "x86_64-thin", CONFIG, ["cfi"], Outcome.BASE, "base").as_dict()
    with pytest.raises(AssertionError, match="no culprit"):
        reply.failure_report(s, [base], FACTS, *TESS)


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


def test_a_line_shaped_like_a_trailer_inside_a_longer_text_is_fenced_too(tmp_path: Path
                                                                         ) -> None:
    """A summary of several lines (a check quoting the guest's words) has each line fenced,
    not only its first: b4 takes nothing from the second."""
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    f = culprit(s, 2) | {"summary": "modules: rmmod said\nFixes: 0123456789ab (\"x\")"}
    body = replies(reply.failure_report(s, [f], FACTS, *TESS))[0].get_content()
    assert "\n| Fixes: 0123456789ab" in body or "\n  | Fixes: 0123456789ab" in body
    from b4 import LoreMessage

    assert LoreMessage.find_trailers(body, followup=True)[0] == []


def test_the_report_goes_to_who_wrote_the_patch_not_who_sent_it(tmp_path: Path) -> None:
    """A patch sent by someone else carries its author in an in-body From (git am takes it):
    the report goes to the author, the sender is copied."""
    s = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path)
    sent = s.patches[0]
    by_other = dataclasses.replace(
        sent, sender="Sub Mitter <sub@example.org>",
        body=f"From: Réal Author <real@example.org>\n\n{sent.body}")
    s = dataclasses.replace(s, patches=(by_other, *s.patches[1:]))
    assert by_other.author == "Réal Author <real@example.org>"
    assert sent.author == sent.sender  # no in-body From: the sender wrote it
    (msg,) = replies(reply.failure_report(s, [culprit(s, 1)], FACTS, *TESS))
    assert [a.addr_spec for a in msg["To"].addresses] == ["real@example.org"]
    assert "sub@example.org" in [a.addr_spec for a in msg["Cc"].addresses]
    assert msg.get_content().startswith("Hi Réal Author,")
