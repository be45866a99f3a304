"""The mail corpus of tests/data/mail: patch series in the shapes lists send them, made once
from a small repository with `git format-patch` and committed (regenerate with
`python -m tests.mailcorpus`; the tests only read the files and rebuild the base)."""

from __future__ import annotations

import base64
import os
import quopri
import subprocess
import sys
import tempfile
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
