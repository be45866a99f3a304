"""A series' identity: exactly what `git am` applies. Each message as git's own mailsplit and
mailinfo read it (decoded, line ends normalised as am normalises them), its commit message
without its trailers, its patch byte for byte: the same series saved by another mail client
or with new trailers is the same key; a v2 that differs in whitespace alone is another."""

from __future__ import annotations

import functools
import hashlib
import re
import subprocess
import tempfile
from pathlib import Path

from harness.base import proc
from harness.base.errors import UsageError
from harness.kernel import patched


@functools.lru_cache(maxsize=16)
def key(mbox: bytes, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for part in as_am_reads(mbox, names):
        digest.update(len(part).to_bytes(8, "big") + part)  # sized: no two ways to split
    return digest.hexdigest()


def as_am_reads(mbox: bytes, names: tuple[str, ...]) -> list[bytes]:
    """Of each message in `mbox`, as `git am` reads it: the subject, the commit message
    without its trailers and the patch (named by `names`, in order, when git cannot)."""
    config = patched.git_config(patched.AM_CONFIG)
    parts: list[bytes] = []
    if not mbox:  # nothing to apply (git mailsplit refuses an empty file)
        return parts
    with tempfile.TemporaryDirectory(prefix="ltoboot-series-") as tmp:
        work = Path(tmp)
        (work / "series.mbx").write_bytes(mbox)
        split = work / "split"
        split.mkdir()
        # am's own call: -b takes a file without a From line as one message; no --keep-cr,
        # so CRLF line ends lose their CR here (git mailinfo keeps them)
        proc.run(["git", *config, "mailsplit", "-b", f"-o{split}", "--",
                  str(work / "series.mbx")], what="splitting the series as git am does",
                 error=UsageError, cwd=work)
        for index, mail in enumerate(sorted(split.iterdir())):
            with mail.open("rb") as f, proc.running(
                    ["git", *config, "mailinfo", str(work / "msg"), str(work / "patch")],
                    stdin=f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False,
                    cwd=work) as p:
                info, err = p.communicate()
            if p.returncode != 0:
                name = names[index] if index < len(names) else f"message {index + 1}"
                why = [line for line in bytes(err).decode(errors="replace").splitlines()
                       if line.strip()][-1:] or [f"exit {p.returncode}"]
                raise UsageError(f"--series: patch {name}: git am cannot read it (git mailinfo: "
                                 f"{why[0]}): the mail is damaged; save it again from the list's "
                                 "archive (b4 mbox MSGID)")
            subject = next((line for line in bytes(info).split(b"\n")
                            if line.startswith(b"Subject: ")), b"")
            parts += [subject, _without_trailers((work / "msg").read_bytes()),
                      (work / "patch").read_bytes()]
    return parts


_TRAILER = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]+\S")


def _is_trailer_block(lines: list[bytes]) -> bool:
    """Trailers (Signed-off-by:, Tested-by: ...), their continuation lines and [ notes ]."""
    return bool(lines) and _TRAILER.match(lines[0]) is not None and all(
        _TRAILER.match(line) or line[:1] in (b" ", b"\t")
        or (line.startswith(b"[") and line.rstrip().endswith(b"]")) for line in lines)


def _without_trailers(message: bytes) -> bytes:
    """A commit message without its last paragraph when that is trailers (what b4 and
    maintainers add to), nor the blank lines at its end (git am drops them)."""
    lines = message.split(b"\n")
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1
    start = end
    while start and lines[start - 1].strip():
        start -= 1
    if _is_trailer_block(lines[start:end]):
        end = start
        while end and not lines[end - 1].strip():
            end -= 1
    return b"\n".join(lines[:end])
