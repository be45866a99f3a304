"""The mail corpus of tests/data/mail: patch series in the shapes lists send them, made once
from a small repository with `git format-patch` and committed (regenerate with
`python -m tests.mailcorpus`; the tests only read the files and rebuild the base)."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import os
import quopri
import re
import subprocess
import sys
import tempfile
from email.encoders import encode_7or8bit
from email.header import Header
from email.mime.nonmultipart import MIMENonMultipart
from pathlib import Path

CORPUS = Path(__file__).parent / "data" / "mail"
AUTHOR = ("Jörg Rödel", "joro@example.org")
TO = "Mäx Maintainer <max@example.org>"
CC = ("linux-kbuild@example.org", "Zoë Ångström <zoe@example.org>")
ENV = {**os.environ, "GIT_AUTHOR_NAME": AUTHOR[0], "GIT_AUTHOR_EMAIL": AUTHOR[1],
       "GIT_COMMITTER_NAME": AUTHOR[0], "GIT_COMMITTER_EMAIL": AUTHOR[1],
       "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
       "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00", "HOME": "/nonexistent"}
# the corpus' series: one C file and one Makefile line, as series mostly are
BASE = {"Makefile": "obj-y += main.o\n", "main.c": "int main(void)\n{\n\treturn 0;\n}\n"}
AFTER = {"main.c": "int main(void)\n{\n\treturn 1;\n}\n",
         "Makefile": "obj-y += main.o\nobj-y += extra.o\n"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=ENV).stdout.strip()


def base_repo(path: Path) -> Path:
    """The repository every series of the corpus applies to, at tag `base`."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in BASE.items():
        (path / name).write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "base")
    git(path, "tag", "base")
    return path


def _series(repo: Path) -> None:
    (repo / "main.c").write_text(AFTER["main.c"])
    git(repo, "commit", "-q", "-am", "main: return 1 for the wörld\n\nSo that Jörg's test sees "
        "it.\n\nSigned-off-by: Jörg Rödel <joro@example.org>")
    (repo / "Makefile").write_text(AFTER["Makefile"])
    git(repo, "commit", "-q", "-am", "kbuild: build extra.o\n\nSigned-off-by: Jörg Rödel "
        "<joro@example.org>")


def _format(repo: Path, out: Path, *extra: str) -> list[Path]:
    out.mkdir(parents=True)
    git(repo, "format-patch", "-q", "-o", str(out), "--to", TO, *(f"--cc={c}" for c in CC),
        *extra, "base..HEAD")
    files = sorted(out.iterdir())
    for f in files:
        if "0000-cover-letter" in f.name:
            f.write_bytes(f.read_bytes().replace(b"*** SUBJECT HERE ***", "Return 1 in the "
                          "wörld".encode()).replace(b"*** BLURB HERE ***",
                                                   "Two small changes from Jörg.".encode()))
    return files


def _encoded(raw: bytes, cte: str) -> bytes:
    """A message with its body in `cte`, as some mailers send patches (git send-email
    --transfer-encoding does it on sending)."""
    head, _, body = raw.partition(b"\n\n")
    data = quopri.encodestring(body) if cte == "quoted-printable" else base64.encodebytes(body)
    lines = [line for line in head.split(b"\n")
             if not line.lower().startswith(b"content-transfer-encoding:")]
    return b"\n".join([*lines, f"Content-Transfer-Encoding: {cte}".encode()]) + b"\n\n" + data


def _mbox(files: list[Path], cte: str = "") -> bytes:
    return b"".join(_encoded(f.read_bytes(), cte) if cte else f.read_bytes() for f in files)


def _patchwork_body(body: str) -> str:
    """A patch's body as Patchwork gives it back: its parser keeps the diff apart from the
    rest (the commit message, `---`, the diffstat and the signature after the diff), and its
    mbox puts the diff last (patchwork/views/utils.py, _submission_to_mbox)."""
    diff_at, sig_at = body.index("\ndiff --git ") + 1, body.rindex("\n-- \n") + 1
    content, diff = body[:diff_at] + body[sig_at:], body[diff_at:sig_at]
    message, postscript = re.split(r"^-{2,3} ?$", content.strip() + "\n", maxsplit=1,
                                   flags=re.M)
    return message.strip() + "\n" + "---" + postscript.rstrip() + "\n" + "\n" + diff


def _patchwork(files: list[Path], tags: str, threaded: bool, order: list[int]) -> bytes:
    """A series as Patchwork's series mbox (/series/ID/mbox/) gives it: each patch as its
    parser kept it, the subject as Patchwork names a patch (`[v2,1/2] title`: its tags
    without PATCH, joined by commas), its own X-Patchwork-* headers, `From patchwork` lines,
    and no cover letter. `threaded`: the References newer Patchwork copies (to the cover
    letter); older Patchwork copied only To, Cc, Date and From. The Message-IDs are made
    here: the corpus comes out the same each time it is made."""
    mails = []
    for number in order:
        sent = email.message_from_bytes(files[number].read_bytes(), policy=email.policy.default)
        title = re.sub(r"^\[[^]]*\]\s*", "", str(sent["Subject"]))
        payload = sent.get_payload(decode=True)
        assert isinstance(payload, bytes)
        mail = MIMENonMultipart("text", "plain", charset="utf-8")
        mail.set_payload(_patchwork_body(payload.decode()).encode())
        encode_7or8bit(mail)
        mail["Subject"] = f"[{tags},{number + 1}/{len(files)}] {title}"
        mail["X-Patchwork-Submitter"] = email.utils.formataddr(
            (str(Header(AUTHOR[0], "utf-8")), AUTHOR[1]))
        mail["X-Patchwork-Id"] = str(4711 + number)
        mail["Message-Id"] = f"<pw-{number + 1}.20260101000000@example.org>"
        if threaded:
            mail["In-Reply-To"] = "<pw-0.20260101000000@example.org>"
            mail["References"] = "<pw-0.20260101000000@example.org>"
        for key in ("To", "Cc", "Date", "From"):  # as they were sent: names RFC 2047 encoded
            mail[key] = ", ".join(email.utils.formataddr(a, "utf-8") for a in
                                  email.utils.getaddresses([str(sent[key])])) \
                if key != "Date" else str(sent[key])
        mail.set_unixfrom("From patchwork Thu Jan  1 00:00:00 2026")
        mails.append(mail.as_bytes(unixfrom=True).decode())
    return "\n".join(mails).encode()


def make(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        repo = base_repo(Path(tmp) / "repo")
        _series(repo)
        work = Path(tmp) / "out"
        shapes: dict[str, bytes] = {
            "cover-thread-utf8.mbox": _mbox(_format(repo, work / "a", "--thread",
                                                    "--cover-letter")),
            "no-cover-thread.mbox": _mbox(_format(repo, work / "b", "--thread")),
            "rfc-v3-qp.mbox": _mbox(_format(repo, work / "c", "--thread", "--rfc", "-v3"),
                                    "quoted-printable"),
            "base64-cover.mbox": _mbox(_format(repo, work / "d", "--thread", "--cover-letter"),
                                       "base64"),
        }
        thread = shapes["no-cover-thread.mbox"]
        shapes["no-cover-crlf.mbox"] = thread.replace(b"\n", b"\r\n")
        no_ids = _mbox(_format(repo, work / "e"))
        shapes["crlf-no-msgid.mbox"] = no_ids.replace(b"\n", b"\r\n")
        # a mailer that lost the charset: unknown-8bit, and a Latin-1 byte in the message
        shapes["unknown-8bit.mbox"] = thread.replace(b"charset=UTF-8", b"charset=unknown-8bit") \
            .replace("Jörg's".encode(), b"J\xf6rg's")
        # Patchwork's series mboxes: `[v2,1/2]` threaded to a cover it leaves out; older
        # Patchwork's without References, in the order a saved thread came, with a list's tag
        v2, v3 = _format(repo, work / "pw2", "-v2"), _format(repo, work / "pw3", "-v3")
        shapes["patchwork-v2-threaded.mbox"] = _patchwork(v2, "v2", True, [0, 1])
        shapes["patchwork-rfc-v3-reversed.mbox"] = _patchwork(v3, "RFC,v3", False, [1, 0])
        shapes["patchwork-net-next-v2.mbox"] = _patchwork(v2, "net-next,v2", False, [0, 1])
        # `[Patch 2/2]: title`, as Patchwork's own sample has it
        shapes["patch-colon-subject.mbox"] = shapes["cover-thread-utf8.mbox"].replace(
            b"Subject: [PATCH 2/2] ", b"Subject: [Patch 2/2]: ")
        for name, data in shapes.items():
            (dest / name).write_bytes(data)
        both = dest / "v1-and-patchv2"
        both.mkdir()
        for f in _format(repo, work / "v1"):
            (both / f"v1-{f.name}").write_bytes(f.read_bytes())
        for f in _format(repo, work / "v2", "--subject-prefix=PATCHv2"):
            (both / f"v2-{f.name}").write_bytes(f.read_bytes())


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    make(target)
