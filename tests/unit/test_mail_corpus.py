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

from harness import series
from harness.errors import UsageError
from harness.reports import reply
from tests import mailcorpus

TESS = ("Tess Tëster", "tess@example.org")
TITLES = ["main: return 1 for the wörld", "kbuild: build extra.o"]
FACTS: dict[str, object] = {
    "passed": True, "tested_by": f"{TESS[0]} <{TESS[1]}>", "compiler": "clang 19",
    "series": {"base_described": "base", "base": "0123456789abcdef"},
    "arches": [{"arch": "x86_64", "lto": "thin", "proc_version": "Linux version 6.1.192",
                "lto_config": "CONFIG_LTO=y", "checks": [{"name": "basic", "passed": True}]}]}
# shape: (has a cover letter, carries Message-IDs, revision)
SHAPES = {
    "cover-thread-utf8.mbox": (True, True, 1),
    "base64-cover.mbox": (True, True, 1),
    "no-cover-thread.mbox": (False, True, 1),
    "no-cover-crlf.mbox": (False, True, 1),
    "rfc-v3-qp.mbox": (False, True, 3),
    "unknown-8bit.mbox": (False, True, 1),
    "crlf-no-msgid.mbox": (False, False, 1),
    "v1-and-patchv2": (False, False, 2),
}


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


def b4_trailers(thread: bytes, answer: str, work: Path) -> list[str]:
    """b4 am, offline, over the thread with our answer in it: each patch's Tested-by lines."""
    exe = shutil.which("b4", path=os.path.dirname(sys.executable)) or shutil.which("b4")
    assert exe, "b4 is installed with ltoboot"
    box = work / "thread.mbox"
    answer_mbox = answer if answer.startswith("From ") else \
        f"From ltoboot Mon Sep 17 00:00:00 2001\n{answer}"
    box.write_bytes(thread.replace(b"\r\n", b"\n") + b"\n" + answer_mbox.encode())
    env = {**os.environ, "HOME": str(work), "XDG_CONFIG_HOME": str(work / "c"),
           "XDG_CACHE_HOME": str(work / "k"), "XDG_DATA_HOME": str(work / "d")}
    r = subprocess.run([exe, "--offline-mode", "--no-stdin", "am", "--no-cache",
                        "--use-local-mbox", str(box), "--outdir", str(work / "b4"),
                        "--mbox-name", "am"], capture_output=True, text=True, env=env, cwd=work,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    got = mailbox.mbox(work / "b4" / "am.mbx")
    texts = [bytes(m.get_payload(decode=True)).decode() for m in got]
    return [" ".join(line for line in text.splitlines() if line.startswith("Tested-by:"))
            for text in texts]


def thread_of(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else \
        b"".join(f.read_bytes() for f in sorted(path.iterdir()))


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_shape_is_read_applied_answered_and_collected_by_b4(
        shape: str, tmp_path: Path, cache: Path) -> None:
    has_cover, has_ids, revision = SHAPES[shape]
    path = mailcorpus.CORPUS / shape
    s = series.read(path, tmp_path)
    assert [p.title for p in s.patches] == TITLES
    assert {p.parsed.revision for p in s.patches} == {revision}
    assert s.ordered_by.startswith("b4") == has_ids
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
@pytest.mark.parametrize(("damage", "body"), [
    ((b"charset=utf-8", b'charset="utf-8\x00"'), "b\u00f6dy"),  # patchwork's fuzz sample
    ((b"charset=utf-8", b'charset="utf\x00-8"'), "b\u00f6dy"),
    ((b"charset=utf-8", b'charset="iso-8859-1\x00"'), "b\u00c3\u00b6dy"),
    ((b"b\xc3\xb6dy", b"b\xc3\xb6\x00dy"), "b\u00f6\x00dy"),  # in the body: only a byte
], ids=["charset-nul-at-end", "charset-nul-inside", "latin1-nul", "body-nul"])
def test_a_nul_byte_ends_a_charset_name(
        damage: tuple[bytes, bytes], body: str, thread: bool, tmp_path: Path) -> None:
    """Fuzzed mail: codecs refuses a charset name with a NUL (ValueError) and b4 stops on it;
    the name ends at the NUL, as git mailinfo (C) reads it."""
    raw = FUZZED.replace(*damage)
    if thread:  # b4 orders mail that carries Message-IDs
        raw = b"Message-ID: <1@example.org>\n" + raw
    f = tmp_path / "p.patch"
    f.write_bytes(raw)
    s = series.read(f, tmp_path)
    assert s.patches[0].title == "x: y" and s.patches[0].body.startswith(body)


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
