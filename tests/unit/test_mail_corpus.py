"""Mail as lists send it (tests/data/mail, made by tests/mailcorpus.py): every shape is read,
put in order, applied onto the corpus' base, answered, the answer parsed back, and b4 (offline)
must put our Tested-by on every patch of the thread with our reply added."""

from __future__ import annotations

import email
import email.policy
import email.utils
import mailbox
import os
import shutil
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from harness.base.errors import UsageError
from harness.mail import series
from harness.reports import reply
from tests import mailcorpus

TESS = ("Tess Tëster", "tess@example.org")
TITLES = ["main: return 1 for the wörld", "kbuild: build extra.o"]
FACTS: dict[str, object] = {
    "passed": True, "tested_by": f"{TESS[0]} <{TESS[1]}>", "compiler": "clang 19",
    "series": {"base_described": "base", "base": "0123456789abcdef"},
    "arches": [{"arch": "x86_64", "lto": "thin", "proc_version": "Linux version 6.1.192",
                "lto_config": "CONFIG_LTO=y",
                "checks": [{"name": "basic", "verdict": "PASS", "passed": True}]}]}
B4, NUMBERS = "b4 ", "the [PATCH k/n] numbers"
B4_MISREAD = f"{NUMBERS} (b4 "  # b4 cannot read Patchwork's `[v2,1/2]`: our order, said so
# shape: (has a cover letter, carries Message-IDs, revision, what orders it)
SHAPES = {
    "cover-thread-utf8.mbox": (True, True, 1, B4),
    "base64-cover.mbox": (True, True, 1, B4),
    "no-cover-thread.mbox": (False, True, 1, B4),
    "no-cover-crlf.mbox": (False, True, 1, B4),
    "rfc-v3-qp.mbox": (False, True, 3, B4),
    "unknown-8bit.mbox": (False, True, 1, B4),
    "crlf-no-msgid.mbox": (False, False, 1, NUMBERS),
    "v1-and-patchv2": (False, False, 2, NUMBERS),
    "patch-colon-subject.mbox": (True, True, 1, B4),  # `[Patch 2/2]: title`
    "patchwork-v2-threaded.mbox": (False, True, 2, B4_MISREAD),
    "patchwork-net-next-v2.mbox": (False, True, 2, B4_MISREAD),
    "patchwork-rfc-v3-reversed.mbox": (False, True, 3, B4),  # b4 guesses right
}
PATCHWORK = {shape for shape in SHAPES if shape.startswith("patchwork-")}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def replies(text: str) -> list[EmailMessage]:
    """The reply file as a mail client reads it: one message, or an mbox of them."""
    parts = text.split("From ltoboot Mon Sep 17 00:00:00 2001\n")[1:] \
        if text.startswith("From ") else [text]
    return [email.message_from_bytes(part.encode(), policy=email.policy.default)
            for part in parts]


def b4_am(thread: bytes, answer: str, work: Path) -> tuple[Path, str]:
    """b4 am, offline, over the thread with our answer in it ("": the thread alone): the mbox
    it writes for git am, and what it said."""
    exe = shutil.which("b4", path=os.path.dirname(sys.executable)) or shutil.which("b4")
    assert exe, "b4 is installed with ltoboot"
    work.mkdir(parents=True, exist_ok=True)
    box = work / "thread.mbox"
    answer_mbox = answer if answer.startswith("From ") or not answer else \
        f"From ltoboot Mon Sep 17 00:00:00 2001\n{answer}"
    box.write_bytes(thread.replace(b"\r\n", b"\n") + b"\n" + answer_mbox.encode())
    env = {**os.environ, "HOME": str(work), "XDG_CONFIG_HOME": str(work / "c"),
           "XDG_CACHE_HOME": str(work / "k"), "XDG_DATA_HOME": str(work / "d")}
    r = subprocess.run([exe, "--offline-mode", "--no-stdin", "am", "--no-cache",
                        "--use-local-mbox", str(box), "--outdir", str(work / "b4"),
                        "--mbox-name", "am"], capture_output=True, text=True, env=env, cwd=work,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return work / "b4" / "am.mbx", r.stdout + r.stderr


def b4_trailers(thread: bytes, answer: str, work: Path) -> list[str]:
    """b4 am, offline, over the thread with our answer in it: each patch's Tested-by lines."""
    got = mailbox.mbox(b4_am(thread, answer, work)[0])
    texts = [bytes(m.get_payload(decode=True)).decode() for m in got]
    return [" ".join(line for line in text.splitlines() if line.startswith("Tested-by:"))
            for text in texts]


def thread_of(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else \
        b"".join(f.read_bytes() for f in sorted(path.iterdir()))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_is_read_applied_answered_and_collected_by_b4(
        shape: str, tmp_path: Path, cache: Path) -> None:
    has_cover, has_ids, revision, ordered_by = SHAPES[shape]
    path = mailcorpus.CORPUS / shape
    s = series.read(path, tmp_path)
    assert [p.title for p in s.patches] == TITLES
    assert {p.parsed.revision for p in s.patches} == {revision}
    assert s.ordered_by.startswith(ordered_by), s.ordered_by
    assert (s.cover is not None) == has_cover
    # every patch as mailed: its own To and Cc, names in Unicode
    for p in s.patches:
        assert email.utils.parseaddr(p.sender)[0] == "Jörg Rödel"
        assert "Mäx Maintainer" in p.to and "Zoë Ångström" in p.cc
    base = mailcorpus.base_repo(tmp_path / "repo")
    applied = series.apply(s, base, "base")
    for name, text in mailcorpus.AFTER.items():
        assert (applied.tree / name).read_text() == text

    answer = reply.reply(s, FACTS, *TESS)
    messages = replies(answer)
    answered = s.answered
    assert len(messages) == (1 if has_cover else 2) == len(answered)
    for msg, mail in zip(messages, answered, strict=True):
        assert email.utils.parseaddr(str(msg["From"])) == TESS
        assert [a.display_name for a in msg["To"].addresses] == ["Jörg Rödel"]
        assert [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == [
            ("Mäx Maintainer", "max@example.org"), ("", "linux-kbuild@example.org"),
            ("Zoë Ångström", "zoe@example.org")]
        assert msg["Subject"] == f"Re: {mail.subject}"
        assert "wörld" in msg["Subject"] or "extra.o" in msg["Subject"]
        assert (str(msg["In-Reply-To"]).strip() == mail.message_id) if has_ids \
            else not msg["In-Reply-To"]
        assert (str(msg["References"]).split() == [*mail.references.split(), mail.message_id]) \
            if has_ids else not msg["References"]
        body = msg.get_content()
        assert body.startswith("On Thu, ") and body.split("\n")[0].endswith(", Jörg Rödel wrote:")
        assert f"\nTested-by: {TESS[0]} <{TESS[1]}>\n" in body
        assert msg["Content-Transfer-Encoding"] == "8bit"  # not base64: readable on the list
    assert "=?utf-8?" in answer.lower() and "Tëster" not in answer.split("\n\n")[0]
    if has_ids:  # b4 is the judge: our Tested-by on every patch
        trailers = b4_trailers(thread_of(path), answer, tmp_path)
        assert trailers == [f"Tested-by: {TESS[0]} <{TESS[1]}>"] * 2


def test_the_series_key_is_what_the_patches_change(tmp_path: Path) -> None:
    """The same patches saved again with new trailers, or beside our own reply, are the same
    series (the cache's patched tree, no rebuild); another diff is another."""
    thread = mailcorpus.CORPUS / "no-cover-thread.mbox"
    key = series.read(thread, tmp_path).key()
    assert series.read(mailcorpus.CORPUS / "no-cover-crlf.mbox", tmp_path).key() == key
    folder = tmp_path / "saved"
    folder.mkdir()
    shutil.copy(thread, folder / "series.mbox")
    (folder / "zz-our-reply.eml").write_text(
        reply.reply(series.read(thread, tmp_path), FACTS, *TESS))
    again = series.read(folder, tmp_path)  # b4 adds the Tested-by to both patches
    assert b"Tested-by: Tess" in again.mbox
    assert again.key() == key
    other = tmp_path / "other.mbox"
    other.write_bytes(thread.read_bytes().replace(b"+\treturn 1;", b"+\treturn 2;"))
    assert series.read(other, tmp_path).key() != key


def test_a_maildir_is_read_as_the_thread_it_holds(tmp_path: Path) -> None:
    """What mutt and offlineimap keep: a message a file, in new/ until read, then in cur/."""
    thread = mailcorpus.CORPUS / "cover-thread-utf8.mbox"
    (tmp_path / "Mail").mkdir()
    folder = mailbox.Maildir(tmp_path / "Mail" / "linux-kbuild")
    for message in mailbox.mbox(thread):
        folder.add(message)
    seen = next(iter(folder.keys()))
    moved = folder[seen]
    moved.set_subdir("cur")
    folder[seen] = moved
    s = series.read(tmp_path / "Mail" / "linux-kbuild", tmp_path)
    assert [p.title for p in s.patches] == TITLES and s.cover is not None
    assert s.key() == series.read(thread, tmp_path).key()


def variant(tmp_path: Path, shape: str, *edits: tuple[bytes, bytes]) -> Path:
    """A corpus file with `edits` made to its bytes (each must change something)."""
    data = (mailcorpus.CORPUS / shape).read_bytes()
    for old, new in edits:
        assert old in data, old
        data = data.replace(old, new)
    f = tmp_path / f"variant-{len(list(tmp_path.glob('variant-*')))}.mbox"
    f.write_bytes(data)
    return f


SUBJECT = b"=?UTF-8?q?main:=20return=201=20for=20the=20w=C3=B6rld?="
SENT_AS: dict[str, list[tuple[bytes, bytes]]] = {  # another mail client's way, same patches
    "raw UTF-8 subject": [(SUBJECT, "main: return 1 for the wörld".encode())],
    "Latin-1": [(SUBJECT, b"=?ISO-8859-1?Q?main:_return_1_for_the_w=F6rld?="),
                (b"charset=UTF-8", b"charset=ISO-8859-1"),
                ("Jörg's".encode(), b"J\xf6rg's"),
                ("Signed-off-by: Jörg Rödel".encode(), b"Signed-off-by: J\xf6rg R\xf6del")],
    # git send-email by someone else than the author: the author's From in the body
    "in-body From": [(b"\n\nSo that", "\n\nFrom: Jörg Rödel <joro@example.org>\n\nSo that"
                      .encode()),
                     (b"From: =?UTF-8?q?J=C3=B6rg=20R=C3=B6del?=",
                      b"From: =?UTF-8?q?M=C3=A4x=20Maintainer?=")],
}


def test_the_same_series_however_it_was_mailed_has_one_key(tmp_path: Path) -> None:
    """The key is what git am applies: CRLF, quoted-printable, base64, RFC 2047 or raw
    headers, another charset, a cover letter or none, [RFC PATCH v3] or [PATCHv2], ordered
    by b4 or by the numbers: one series, one key (unknown-8bit.mbox changed a letter)."""
    key = series.read(mailcorpus.CORPUS / "no-cover-thread.mbox", tmp_path).key()
    shapes = [mailcorpus.CORPUS / shape for shape in SHAPES
              if shape != "unknown-8bit.mbox" and shape not in PATCHWORK]
    sent = [variant(tmp_path, "no-cover-thread.mbox", *edits) for edits in SENT_AS.values()]
    lf = variant(tmp_path, "crlf-no-msgid.mbox", (b"\r\n", b"\n"))  # our mbox, not b4's
    assert {p.name: series.read(p, tmp_path).key() for p in [*shapes, *sent, lf]} == \
        dict.fromkeys([p.name for p in [*shapes, *sent, lf]], key)
    # Patchwork gives the signature back before the diff: another patch as git mailinfo
    # reads it, one key however Patchwork tags and orders it
    assert len({series.read(mailcorpus.CORPUS / shape, tmp_path).key()
                for shape in PATCHWORK}) == 1


NO_B4 = (b"Message-Id: ", b"X-Message-Id: ")  # git am gets the mail as it came, not b4's


@pytest.mark.parametrize(("shape", "edits"), [
    ("no-cover-thread.mbox", [(b"+\treturn 1;\n", b"+\treturn 1; \n")]),  # an added line's end
    ("no-cover-thread.mbox", [(b" int main(void)\n", b" int main(void) \n")]),  # a context line
    ("rfc-v3-qp.mbox", [NO_B4, (b"+\treturn 1;\n", b"+\treturn 1;=0D\n")]),  # a quoted CR
    ("no-cover-thread.mbox", [(b"sees it.\n", b"sees it.\nNote: on x86 only.\n")]),  # text
], ids=["added-line-blank", "context-line-blank", "quoted-cr", "text-like-a-trailer"])
def test_any_change_to_what_am_applies_is_another_series(
        shape: str, edits: list[tuple[bytes, bytes]], tmp_path: Path) -> None:
    """A v2 that only fixes whitespace (checkpatch), or mail that damaged it, is not v1:
    the cache must not answer it with v1's tree and kernel."""
    key = series.read(mailcorpus.CORPUS / shape, tmp_path).key()
    assert series.read(variant(tmp_path, shape, NO_B4), tmp_path).key() == key
    assert series.read(variant(tmp_path, shape, *edits), tmp_path).key() != key


def test_a_whitespace_v2_is_applied_not_served_v1s_tree(tmp_path: Path, cache: Path) -> None:
    base = mailcorpus.base_repo(tmp_path / "repo")
    v1 = variant(tmp_path, "no-cover-thread.mbox", (b"+\treturn 1;\n", b"+\treturn 1; \n"))
    main = series.apply(series.read(v1, tmp_path), base, "base").tree / "main.c"
    assert main.read_text() == "int main(void)\n{\n\treturn 1; \n}\n"
    v2 = mailcorpus.CORPUS / "no-cover-thread.mbox"  # checkpatch's fix
    main = series.apply(series.read(v2, tmp_path), base, "base").tree / "main.c"
    assert main.read_text() == mailcorpus.AFTER["main.c"]
    damaged = variant(tmp_path, "no-cover-thread.mbox",  # a mailer added a blank
                      (b" int main(void)\n", b" int main(void) \n"))
    with pytest.raises(UsageError, match=r"patch 1/2 .* does not apply: main.c"):
        series.apply(series.read(damaged, tmp_path), base, "base")


SOB = "Signed-off-by: Jörg Rödel <joro@example.org>".encode()
TRAILERS: dict[str, tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]] = {
    # (the series as first mailed, saved again): what b4 and maintainers add
    "reviewed": ([], [(SOB + b"\n---", SOB + "\nReviewed-by: Zoë Ångström <zoe@example.org>\n"
                       "Cc: stable@vger.kernel.org # 6.1+\n"
                       "Link: https://lore.kernel.org/r/1-joro@example.org\n---".encode())]),
    "first-trailer": ([(b"it.\n\n" + SOB, b"it.")],
                      [(b"it.\n\n" + SOB, b"it.\n\nTested-by: Tess <tess@example.org>")]),
}


@pytest.mark.parametrize(("mailed", "saved"), TRAILERS.values(), ids=TRAILERS.keys())
def test_new_trailers_keep_the_key(mailed: list[tuple[bytes, bytes]],
                                   saved: list[tuple[bytes, bytes]], tmp_path: Path) -> None:
    """The trailer block (the message's last paragraph, when it is trailers) is not what a
    series changes: saved again with Reviewed-by, Cc: stable, Link lines, it is the same."""
    key = series.read(variant(tmp_path, "no-cover-thread.mbox", *mailed), tmp_path).key()
    assert series.read(variant(tmp_path, "no-cover-thread.mbox", *saved), tmp_path).key() == key


@pytest.mark.parametrize(("name", "addr", "says"), [
    ("Tess\nBcc: x@evil.org", "tess@example.org", "--name"),
    ("", "tess@example.org", "--name"),
    ("Tess", "no-at-sign", "--email"),
    ("Tess", "a@x.org>", "--email"),
    ("Tess", "tess@example.org\n", "--email"),
    ("Tess", "Tess <tess@example.org>", "--email"),
])
def test_name_and_email_are_refused_before_anything(name: str, addr: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        reply.check_identity(name, addr)


def test_subjects_are_parsed_once() -> None:
    parse = series.Subject.parse
    assert parse("[PATCHv2 1/3] x: y") == series.Subject(False, 2, 1, 3, True, "x: y")
    assert parse("[PATCH v4 02/10] x") == series.Subject(False, 4, 2, 10, True, "x")
    assert parse("[RFC PATCH v3 0/5] cover") == series.Subject(False, 3, 0, 5, True, "cover")
    assert parse("Re: [PATCH] x") == series.Subject(True, 1, 1, 1, False, "x")
    assert parse("[PATCH net-next,v2,3/4] x").revision == 2
    assert parse("Re: AW: [PATCH 1/2] x").reply


@pytest.mark.parametrize(("subject", "parsed"), [
    ("[v2,1/4] x: y", series.Subject(False, 2, 1, 4, True, "x: y")),
    ("[RFC,v3,2/5] x: y", series.Subject(False, 3, 2, 5, True, "x: y")),
    ("[net-next,v2,3/4] x: y", series.Subject(False, 2, 3, 4, True, "x: y")),
    ("[Patch 2/2]: powerpc/hotplug/mm: Fix", series.Subject(False, 1, 2, 2, True,
                                                            "powerpc/hotplug/mm: Fix")),
    ("[PATCH]:x: y", series.Subject(False, 1, 1, 1, False, "x: y")),
], ids=["patchwork", "patchwork-rfc", "patchwork-list-tag", "colon-after-tag", "colon-tight"])
def test_subjects_as_patchwork_writes_them(subject: str, parsed: series.Subject) -> None:
    """Patchwork's series mbox names a patch by its tags without PATCH, joined by commas;
    some send `[Patch 2/2]: title`: the title never starts with ": "."""
    assert series.Subject.parse(subject) == parsed


def test_unknown_charsets_fall_back_to_utf8(tmp_path: Path) -> None:
    raw = (b"From: =?x-nonsense?q?A=F6?= <a@example.org>\nSubject: [PATCH] x\n"
           b"Content-Type: text/plain; charset=x-nonsense\n\nb\xf6dy\n---\n"
           b"diff --git a/f b/f\n")
    f = tmp_path / "p.patch"
    f.write_bytes(raw)
    s = series.read(f, tmp_path)
    assert s.patches[0].body.startswith("b\ufffddy")


FUZZED = (b"From: A <a@example.org>\nSubject: [PATCH] x: y\n"
          b"Content-Type: text/plain; charset=utf-8\n\nb\xc3\xb6dy\n---\n"
          b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n")


@pytest.mark.parametrize("thread", [False, True], ids=["no-message-id", "message-id"])
@pytest.mark.parametrize(("damage", "body", "am_reads"), [
    ((b"charset=utf-8", b'charset="utf-8\x00"'), "b\u00f6dy", True),  # patchwork's fuzz sample
    ((b"charset=utf-8", b'charset="utf\x00-8"'), "b\u00f6dy", False),  # "utf": unknown
    ((b"charset=utf-8", b'charset="iso-8859-1\x00"'), "b\u00c3\u00b6dy", True),
    ((b"b\xc3\xb6dy", b"b\xc3\xb6\x00dy"), "b\u00f6\x00dy", True),  # in the body: only a byte
], ids=["charset-nul-at-end", "charset-nul-inside", "latin1-nul", "body-nul"])
def test_a_nul_byte_ends_a_charset_name(damage: tuple[bytes, bytes], body: str,
                                        am_reads: bool, thread: bool, tmp_path: Path) -> None:
    """Fuzzed mail: codecs refuses a charset name with a NUL (ValueError) and b4 stops on it;
    the name ends at the NUL, as git mailinfo (C) reads it."""
    raw = FUZZED.replace(*damage)
    if thread:  # b4 orders mail that carries Message-IDs
        raw = b"Message-ID: <1@example.org>\n" + raw
    f = tmp_path / "p.patch"
    f.write_bytes(raw)
    s = series.read(f, tmp_path)
    assert s.patches[0].title == "x: y" and s.patches[0].body.startswith(body)
    if am_reads:
        assert len(s.key()) == 64
    else:  # git am cannot: refused with the patch's name, before a build
        with pytest.raises(UsageError, match=r'^--series: patch 1/1 "x: y": git am cannot read'):
            s.key()


@pytest.mark.parametrize("thread", [False, True], ids=["no-message-id", "message-id"])
def test_a_nul_byte_in_an_encoded_word_is_refused_by_name(thread: bool, tmp_path: Path,
                                                         cache: Path) -> None:
    """`=?utf-8\\0?Q?...?=`: git mailinfo cannot read the subject, so git am cannot apply it:
    one line naming the patch, not an internal error, and never a key for it."""
    raw = FUZZED.replace(b"Subject: [PATCH] x: y", b"Subject: [PATCH] =?utf-8\x00?Q?x:_y?=")
    if thread:
        raw = b"Message-ID: <1@example.org>\n" + raw
    f = tmp_path / "p.patch"
    f.write_bytes(raw)
    s = series.read(f, tmp_path)
    assert "\0" not in s.patches[0].subject
    with pytest.raises(UsageError, match=r"^--series: patch 1/1 .*: git am cannot read it"):
        series.apply(s, mailcorpus.base_repo(tmp_path / "repo"), "base")


@pytest.mark.parametrize("setting", ["[am]\n\tkeepcr = true\n",
                                     "[apply]\n\twhitespace = fix\n"])
def test_the_testers_git_config_does_not_change_what_am_applies(
        setting: str, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CRLF mail applies without its CRs and a patch as it is, trailing blank included,
    whatever ~/.gitconfig says: the series' key names what am applies."""
    config = tmp_path / "gitconfig"
    config.write_text(setting)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    crlf = tmp_path / "crlf.mbox"
    crlf.write_bytes((mailcorpus.CORPUS / "crlf-no-msgid.mbox").read_bytes()  # no b4: am gets CRLF
                     .replace(b"+\treturn 1;\r\n", b"+\treturn 1; \r\n"))
    applied = series.apply(series.read(crlf, tmp_path), mailcorpus.base_repo(tmp_path / "repo"),
                           "base")
    assert (applied.tree / "main.c").read_bytes() == b"int main(void)\n{\n\treturn 1; \n}\n"
    assert (applied.tree / "Makefile").read_text() == mailcorpus.AFTER["Makefile"]
