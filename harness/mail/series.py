"""A mailed patch series: read it (an mbox or a directory of `git format-patch` files), as
lists send it, and put it in order. Applying it is harness/kernel/patched.py.

Ordering: b4 (the kernel community's tool) when every message carries a Message-ID, as mailed
series do: it rebuilds the thread, keeps the newest revision and collects the trailers, offline
from the file. Files straight from `git format-patch` (no `--thread`) have no Message-IDs; then
the `[PATCH vN k/n]` numbers order them, the newest revision wins.
"""

from __future__ import annotations

import codecs
import contextlib
import email
import email.header
import email.message
import email.policy
import functools
import hashlib
import importlib.metadata
import mailbox
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, urlsplit

from harness.base import proc
from harness.base.errors import UsageError
from harness.kernel import patched
from harness.kernel.model import patchset_hash
from harness.mail import am

_REPLY = re.compile(r"^\s*(?:(?:re|aw|fwd?)\s*:\s*)+", re.I)
_TAGS = re.compile(r"^\s*\[([^\]]*)\]\s*")
_COUNTER = re.compile(r"^0*(\d+)/0*(\d+)$")
_REVISION = re.compile(r"^(?:patch)?v(\d+)$", re.I)
_AFTER_TAGS = re.compile(r"^:\s*")  # "[Patch 2/2]: x: y", as some send it


@dataclass(frozen=True)
class Subject:
    """A subject parsed once, as b4's LoreSubject does: `Re: [RFC PATCHv2 3/5] x: y` is a
    reply, revision 2, counter 3 of 5, title `x: y`."""

    reply: bool
    revision: int
    counter: int
    expected: int
    numbered: bool
    title: str

    @classmethod
    def parse(cls, subject: str) -> Subject:
        """Tags as lists and Patchwork write them: `[PATCH v2 1/4]`, `[v2,1/4]`,
        `[RFC,v3,2/5]`, `[net-next,v2,3/4]`."""
        rest = " ".join(subject.split())
        m = _REPLY.match(rest)
        reply = m is not None
        rest = rest[m.end():] if m else rest
        revision, counter, expected, numbered = 1, 1, 1, False
        while (tag := _TAGS.match(rest)) is not None:
            for word in tag.group(1).replace(",", " ").split():
                if (c := _COUNTER.match(word)) is not None:
                    counter, expected, numbered = int(c.group(1)), int(c.group(2)), True
                elif (v := _REVISION.match(word)) is not None:
                    revision = int(v.group(1))
            rest = rest[tag.end():]
            rest = _AFTER_TAGS.sub("", rest)
        return cls(reply, revision, counter, expected, numbered, rest.strip())


@dataclass(frozen=True)
class Mail:
    subject: str  # decoded, Unicode
    sender: str  # the From header, decoded
    to: str
    cc: str
    date: str
    message_id: str  # with its <>, or "" when the message has none
    references: str
    body: str  # the text part

    @property
    def parsed(self) -> Subject:
        return Subject.parse(self.subject)

    @property
    def title(self) -> str:
        """The subject without its [PATCH ...] tag."""
        return self.parsed.title

    @property
    def author(self) -> str:
        """Who wrote the patch, as `git mailinfo` (and so `git am`) takes it: a `From:` among
        the in-body headers at the very top of the body (a patch sent by someone else; a
        header continued on indented lines, RFC 2047 decoded), else the sender."""
        found: dict[str, str] = {}
        name = ""
        for line in self.body.lstrip("\n").splitlines():
            if name and line[:1] in (" ", "\t"):  # a folded in-body header goes on
                found[name] += " " + line.strip()
                continue
            head, colon, value = line.partition(":")
            if not colon or head.lower() not in ("from", "date", "subject"):
                break  # an indented line, or the message: the in-body headers are over
            name = head.lower()
            found[name] = value.strip()
        author = found.get("from", "")
        return _decoded(author) if author else self.sender

    @property
    def number(self) -> str:
        """`k/n` as the subject numbers it ("1/1" for a lone patch)."""
        p = self.parsed
        return f"{p.counter}/{p.expected}"


@dataclass(frozen=True)
class Series:
    cover: Mail | None
    patches: tuple[Mail, ...]
    mbox: bytes  # the patches, in order, ready for `git am`
    ordered_by: str  # "b4 0.16.0" or "the [PATCH k/n] numbers"
    origin: str | None = None  # the URL it was fetched from (no credentials), None: a file
    # each patch's bytes as given, in order: a directory's file as it is, a message of an
    # mbox as a list archive serves it raw (without the mbox From line)
    patch_bytes: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def answered(self) -> tuple[Mail, ...]:
        """What a Tested-by answers: the cover letter (b4 gives its trailers to every patch),
        or, without one, every patch (a reply counts for the message it answers alone)."""
        return (self.cover,) if self.cover else self.patches

    @property
    def name(self) -> str:
        return self.answered[0].title

    def patchset(self) -> patched.PatchSet:
        """What applying needs of the series: its mbox, its patches' names, its key."""
        return patched.PatchSet(self.name, self.mbox, tuple((p.number, p.title)
                                                             for p in self.patches),
                                self.ordered_by, self.key())

    def patchset_hash(self) -> str:
        """KCIDB's patchset_hash: over each patch's bytes as given (what `sha256sum *.patch`
        reads of `git format-patch` files, or of the messages a list archive serves), not
        as b4 rewrote them for am; KernelCI matches this series tested elsewhere by it."""
        return patchset_hash(hashlib.sha256(raw).hexdigest() for raw in self.patch_bytes)

    def patch_files(self) -> list[tuple[str, str]]:
        """(name, URL) of where others download the patches (KCIDB's patchset_files): each
        message on the list archive it was fetched from, or the Patchwork series' mbox;
        none for a series read from the tester's files (a local path is no URL)."""
        return _downloads(self.origin, [p.message_id for p in self.patches]) \
            if self.origin else []

    def key(self) -> str:
        """What `git am` applies, read as am reads it (git mailsplit, then git mailinfo): each
        patch's subject, its commit message without the trailer block, and the patch byte for
        byte. The same series saved by another mail client (CRLF, quoted-printable, base64,
        another charset) or again with new trailers (or beside our own reply) is the same
        series; any other change to what am applies, a trailing blank included, is another."""
        return am.key(self.mbox, tuple(f"{p.number} \"{p.title}\"" for p in self.patches))


# the origins harness/mail/series_source.py fetches: a public-inbox thread, a Patchwork series
_THREAD_MBOX = re.compile(r"^(?P<inbox>https?://.+)/[^/]+/t\.mbox\.gz$")
_PATCHWORK_MBOX = re.compile(r"/series/(?P<id>\d+)/mbox/?$")


def _downloads(origin: str, msgids: list[str]) -> list[tuple[str, str]]:
    """(file name, URL) of a series fetched from `origin`, for others to download: from a
    public-inbox thread (…/<Message-ID>/t.mbox.gz), each message as it was mailed
    (…/<Message-ID>/raw: a list archive serves it so) when every one has a Message-ID; else,
    a Patchwork series' mbox, the one URL it came from."""
    ids = [m.strip().removeprefix("<").removesuffix(">") for m in msgids]
    if (thread := _THREAD_MBOX.match(origin)) is not None and ids and all(ids):
        return [(f"{n:04d}.patch", f"{thread['inbox']}/{quote(i, safe='@+=')}/raw")
                for n, i in enumerate(ids, 1)]
    path = urlsplit(origin).path
    m = _PATCHWORK_MBOX.search(path)
    return [(f"series-{m['id']}.mbox" if m else
             path.rstrip("/").rpartition("/")[2] or "series.mbox", origin)]


def _charset(name: str | None) -> str:
    """A charset Python knows: mail says unknown-8bit, x-unknown and worse. Fuzzed mail puts a
    NUL byte in the name, which codecs refuses with ValueError: the name ends there, as it does
    for git mailinfo (C strings)."""
    try:
        return codecs.lookup((name or "utf-8").partition("\0")[0]).name
    except LookupError:
        return "utf-8"


def _text(msg: email.message.Message) -> str:
    part = msg
    if msg.is_multipart():
        part = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), msg)
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return payload.decode(_charset(part.get_content_charset()), errors="replace")


def _decoded(value: str) -> str:
    """An in-body header's value (RFC 2047 words or raw UTF-8) in Unicode, on one line."""
    with contextlib.suppress(Exception):  # mail from the world: the words as they came
        value = str(email.header.make_header(email.header.decode_header(value)))
    return " ".join(value.replace("\0", "\ufffd").split())


def _header(msg: email.message.Message, name: str) -> str:
    """A header decoded to Unicode (RFC 2047 words and raw UTF-8 alike), on one line."""
    try:
        value = msg.get(name)
    except Exception:  # mail from the world: its raw header beats a traceback
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    # a NUL byte (fuzzed mail) would reach a terminal or our reply's headers
    return " ".join(str(value).replace("\0", "\ufffd").split()) if value is not None else ""


def _parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _mail(msg: email.message.Message) -> Mail:
    return Mail(subject=_header(msg, "Subject"), sender=_header(msg, "From"),
                to=_header(msg, "To"), cc=_header(msg, "Cc"), date=_header(msg, "Date"),
                message_id=_header(msg, "Message-ID"), references=_header(msg, "References"),
                body=_text(msg))


def _is_patch(mail: Mail) -> bool:
    return not mail.parsed.reply and bool(
        re.search(r"^diff --git a/|^--- \S.*\r?\n\+\+\+ \S", mail.body, re.M))


def _is_cover(mail: Mail) -> bool:
    p = mail.parsed
    return p.numbered and p.counter == 0 and not p.reply


def _files(path: Path) -> list[Path]:
    """The files of mail at `path`: the file itself, a directory's files (sorted by name), or
    a maildir's messages (what mutt and offlineimap keep: in cur/ and new/)."""
    if not path.is_dir():
        return [path]
    maildir = (path / "cur").is_dir() and (path / "new").is_dir()
    folders = [path / "cur", path / "new"] if maildir else [path]
    return sorted((p for d in folders for p in d.iterdir()
                   if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)


@dataclass(frozen=True)
class _Message:
    parsed: email.message.Message
    raw: bytes  # as an mbox holds it, for git am and b4: with a From line
    given: bytes  # as given: a directory's file, or a message of an mbox without its From line


def _messages(path: Path, shown: str = "") -> list[_Message]:
    """Every message in an mbox file, a directory of patch files or a maildir."""
    if not (path.is_file() or path.is_dir()):
        raise UsageError(f"--series {shown or path}: no such file or directory")
    files = _files(path)
    found: list[_Message] = []
    for f in files:
        whole = f.read_bytes()
        if whole.startswith(b"From "):
            box = mailbox.mbox(f, create=False)
            try:
                keys = list(box.iterkeys())
                for key in keys:
                    # mailbox drops the blank line that parts messages only when it is
                    # os.linesep: a CRLF one goes here
                    raw = _unparted(box.get_bytes(key, from_=True), b"\r\n")
                    # a `git format-patch` file of a directory is its bytes, From line and all
                    given = whole if path.is_dir() and len(keys) == 1 else \
                        _unparted(box.get_bytes(key), b"\r\n")
                    found.append(_Message(_parse(box.get_bytes(key)), raw, given))
            finally:
                box.close()
        elif re.match(rb"^[A-Za-z-]+:", whole):  # one message without an mbox From line
            found.append(_Message(_parse(whole), b"From ltoboot Thu Jan  1 00:00:00 1970\n"
                                  + _unparted(whole, b"\n", b"\r\n"), whole))
    return found


def _unparted(raw: bytes, *blanks: bytes) -> bytes:
    """A message without the blank line that parts it from the next one in an mbox."""
    return next((raw[:-len(b)] for b in blanks if raw.endswith(b + b)), raw)


def _mbox(raws: list[bytes]) -> bytes:
    """Messages as an mbox: each one's last line ended, and a blank line after it, as b4
    writes them (git am's mailsplit keeps that line with the message: the series key reads
    the same bytes from b4 and from us)."""
    ending = [raw if raw.endswith(b"\n") else raw + b"\n" for raw in raws]
    return b"".join(raw + (b"\r\n" if raw.endswith(b"\r\n") else b"\n") for raw in ending)


def _b4_version() -> str | None:
    exe = _b4()
    return None if exe is None else _version_of(exe)


@functools.cache
def _version_of(exe: str) -> str:
    if Path(exe) == Path(sys.executable).parent / "b4":  # ours: its metadata, not a second
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # of imports
            return f"b4 {importlib.metadata.version('b4')}"
    out = proc.run([exe, "--version"], what="asking b4 for its version", ok=range(256))
    return f"b4 {out.strip()}" if out.strip() else "b4"


def _b4() -> str | None:
    here = Path(sys.executable).parent / "b4"  # installed with ltoboot, in the same venv
    return str(here) if here.is_file() else shutil.which("b4")


def _with_b4(messages: list[_Message], work: Path, shown: str,
             version: str) -> tuple[bytes, bytes | None]:
    """b4 am over the messages, offline: (the am-ready mbox, the cover letter or None)."""
    exe = _b4()
    assert exe is not None
    whole = work / "input.mbox"
    whole.write_bytes(_mbox([m.raw for m in messages]))
    out = work / "b4"
    env = {**os.environ, "HOME": str(work), "XDG_CONFIG_HOME": str(work / "config"),
           "XDG_CACHE_HOME": str(work / "cache"), "XDG_DATA_HOME": str(work / "data")}
    with proc.running([exe, "--offline-mode", "--no-stdin", "--quiet", "am", "--no-cache",
                       "--use-local-mbox", str(whole), "--outdir", str(out),
                       "--mbox-name", "series"], stdout=subprocess.PIPE,
                      stderr=subprocess.STDOUT, cwd=work, env=env) as p:
        said, _ = p.communicate()
    mbx = out / "series.mbx"
    if p.returncode != 0 or not mbx.is_file():
        last = [line for line in str(said).splitlines() if line.strip()][-1:] or ["no output"]
        raise UsageError(f"--series {shown}: {version} found no series to apply ({last[0]}): "
                         "give the mbox of one patch series (cover letter included)")
    cover = out / "series.cover"
    return mbx.read_bytes(), cover.read_bytes() if cover.is_file() else None


def _newest(mails: list[Mail]) -> list[Mail]:
    newest = max((m.parsed.revision for m in mails), default=1)
    return [m for m in mails if m.parsed.revision == newest]


NUMBERS = "the [PATCH k/n] numbers"


def _by_b4(messages: list[_Message], mails: list[tuple[Mail, _Message]],
           work: Path, shown: str, version: str) -> Series:
    mbx, cover_raw = _with_b4(messages, work, shown, version)
    # b4 rewrites what it writes (no To/Cc, trailers added): a reply answers the message
    # as it was mailed, so each is the original of the same Message-ID, and its bytes are
    # the ones mailed
    mailed = {m.message_id: (m, message) for m, message in mails}
    ordered = [mailed.get(p.message_id, (p, message))
               for p, message in ((_mail(m.parsed), m) for m in _messages_of(mbx, work))]
    cover_id = _mail(_parse(cover_raw)).message_id if cover_raw else ""
    cover = mailed[cover_id][0] if cover_id in mailed else None
    return Series(cover, tuple(p for p, _ in ordered), mbx, version,
                  patch_bytes=tuple(m.given for _, m in ordered))


def _by_numbers(mails: list[tuple[Mail, _Message]], ordered_by: str) -> Series:
    """The newest revision's patches in the order their subjects number them."""
    numbered = _newest([m for m, _ in mails if _is_patch(m) or _is_cover(m)])
    message_of = {id(m): message for m, message in mails}
    cover = next((m for m in numbered if _is_cover(m)), None)
    patches = tuple(sorted((m for m in numbered if _is_patch(m) and not _is_cover(m)),
                           key=lambda m: m.parsed.counter))
    return Series(cover, patches, _mbox([message_of[id(m)].raw for m in patches]), ordered_by,
                  patch_bytes=tuple(message_of[id(m)].given for m in patches))


def read(path: Path, work: Path, *, shown: str = "", origin: str | None = None) -> Series:
    """The series in `path`, in order, its am-ready mbox written under `work` (scratch).
    `shown` names it in messages (what the tester gave; the path by default); `origin` is the
    URL it was fetched from (harness/mail/series_source.py)."""
    shown = shown or str(path)
    messages = _messages(path, shown)
    mails = [(_mail(m.parsed), m) for m in messages]
    if not any(_is_patch(m) for m, _ in mails):
        raise UsageError(f"--series {shown}: no patch in it (no message with a diff): give an "
                         "mbox, a maildir or a directory of `git format-patch` files")
    version = _b4_version()
    # b4 stops with a ValueError on a NUL byte in a header (a charset name in fuzzed mail):
    # the numbers order such a series, as git am reads it
    nul = any(b"\0" in re.split(rb"\r?\n\r?\n", m.raw, maxsplit=1)[0] for _, m in mails)
    threaded = all(m.message_id for m, _ in mails)
    if not (version and threaded and not nul):
        return _checked(replace(_by_numbers(mails, NUMBERS + (
            " (b4 cannot read a NUL byte in a header)" if version and threaded else "")),
            origin=origin), shown)
    own = _by_numbers(mails, NUMBERS)
    try:
        ordered = _by_b4(messages, mails, work, shown, version)
    except UsageError:
        if not _whole(own.patches):
            raise
        said = "found no series"
    else:
        if _whole(ordered.patches) or not _whole(own.patches):
            return _checked(replace(ordered, origin=origin), shown)  # b4's, or its verdict
        # b4 misread what our subjects read whole (Patchwork's `[v2,1/4]`, a series without
        # References): its order would be a false "missing"
        have = [p.number for p in ordered.patches]
        gone = [n for n in _wanted(own.patches) if n not in have]
        said = f"left out {', '.join(gone)}" if gone else f"gave {', '.join(have)}"
    return _checked(replace(own, ordered_by=f"{NUMBERS} ({version} {said})", origin=origin),
                    shown)


def _messages_of(mbox: bytes, work: Path) -> list[_Message]:
    f = work / "ordered.mbox"
    f.write_bytes(mbox)
    return _messages(f)


def _wanted(patches: tuple[Mail, ...]) -> list[str]:
    """The numbers of a whole series as its first patch counts it (1/n .. n/n)."""
    total = patches[0].parsed.expected if patches else 0
    return [f"{k}/{total}" for k in range(1, total + 1)]


def _whole(patches: tuple[Mail, ...]) -> bool:
    return bool(patches) and [p.number for p in patches] == _wanted(patches)


def _checked(series: Series, shown: str) -> Series:
    """Refuse a series with patches missing or twice: it cannot be what was mailed."""
    if not series.patches:
        raise UsageError(f"--series {shown}: no patch in it: give an mbox, a maildir or a "
                         "directory of `git format-patch` files")
    if not _whole(series.patches):
        want, have = _wanted(series.patches), [p.number for p in series.patches]
        missing = [n for n in want if n not in have]
        raise UsageError(f"--series {shown}: the series is not whole: "
                         + (f"{', '.join(missing)} missing" if missing else
                            f"patches {', '.join(have)}, expected 1..{len(want)} once each")
                         + "; give every patch of it (b4 mbox MSGID fetches a whole thread)")
    return series


def apply(series: Series, repo: Path, base: str) -> patched.Applied:
    """`series` applied onto `base` of the git tree `repo`: a cache entry, made once."""
    return patched.apply(series.patchset(), repo, base)


def describe(series: Series) -> dict[str, object]:
    """The series as data, for --format json."""
    return {"name": series.name, "ordered_by": series.ordered_by, "origin": series.origin,
            "cover": asdict(series.cover) | {"body": ""} if series.cover else None,
            "answered": [m.message_id for m in series.answered],
            "patches": [f"{p.number} {p.title}" for p in series.patches]}

