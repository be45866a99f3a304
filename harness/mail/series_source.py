"""Where a mailed series comes from: what a tester copies from the mail they read (a Message-ID,
a lore or any public-inbox URL, a Patchwork series URL) or keeps (an mbox, a maildir, a
directory of `git format-patch` files), as a local mailbox for harness/mail/series.py to read.

Message-IDs and public-inbox URLs are fetched by b4 itself (`b4 mbox`): a bare Message-ID from
the server the user's b4 config names (b4.midmask, lore.kernel.org by default), a URL from its
own server and inbox. Patchwork's series mbox comes with requests (harness/kernel/fetch.py: the
one retry policy). What was fetched is one cache entry per source, mail/<key>.mbox, replaced
whole by each fetch: a thread gains replies, a Patchwork series the patches that came late.

What a server sends is hostile until read: b4 runs within a memory and a file size limit (a
gzip bomb ends it there), a Patchwork download stops at a byte count, and no path is made from
what comes back. A URL's credentials go to its server and nowhere else: they are never
printed, saved, or put on a command line.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from harness.base import cache, proc, redaction, retry
from harness.base.errors import InfraError, LtobootError, NotFound, UsageError
from harness.base.progress import say
from harness.kernel import fetch

RECIPE = 1  # bump when an entry's name or content means another thing
MAX_BYTES = 128 << 20  # a thread or series mbox over this is no patch series
B4_MEMORY = 1 << 30  # what b4 may map: it unpacks the whole t.mbox.gz in memory
B4_SECONDS = 600.0  # b4 retries a mirror or two, each within its own timeouts
LORE_MIDMASK = "https://lore.kernel.org/all/%s"  # b4's default
_PATCHWORK_SERIES = re.compile(r"^(?P<root>.*?)/series/(?P<id>\d+)(?:/mbox)?/?$")
_PATCHWORK_LIST = re.compile(r"^(?P<root>.*?)/project/[^/]+/list/?$")
_PATCHWORK_PATCH = re.compile(r"^.*?/project/[^/]+/patch/(?P<msgid>[^/]+@[^/]+?)(?:/.*)?$")
_BARE_MSGID = re.compile(r"^[^\s<>/@]+@[^\s<>/@]+$")
_BRACKETED_MSGID = re.compile(r"^<([^\s<>]+@[^\s<>]+)>$")


class Kind(StrEnum):
    FILE = "file"  # an mbox, a maildir, a directory of patch files
    MESSAGE_ID = "message-id"  # fetched by b4 from the server b4's config names
    PUBLIC_INBOX = "public-inbox"  # fetched by b4 from the URL's server and inbox
    PATCHWORK = "patchwork"  # a series mbox, fetched with requests


@dataclass(frozen=True)
class Wanted:
    """What --series names, parsed once."""

    kind: Kind
    shown: str  # as the tester gave it, without credentials: what messages say
    path: Path | None = None  # FILE
    msgid: str = ""  # MESSAGE_ID, PUBLIC_INBOX: bare, no <>
    midmask: str = ""  # PUBLIC_INBOX: the URL's server and inbox, as b4's b4.midmask
    url: str = ""  # PATCHWORK: its series mbox
    credentials: tuple[str, str] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Source:
    """A local mailbox to read, and where it came from."""

    path: Path
    shown: str
    origin: str | None  # the URL fetched (no credentials); None for a local file


def _no_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _url(given: str) -> Wanted:
    shown = _no_credentials(given)
    try:
        fetch.check_url(shown)
    except UsageError as e:
        raise UsageError(f"--series {e}") from None
    parts = urlsplit(given)
    credentials = None
    if parts.username is not None or parts.password is not None:
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        credentials = (user, password)
        for secret in (parts.netloc.rpartition("@")[0], password, quote(password, safe="")):
            redaction.hold(secret)  # whatever b4 or a server says of it, never shown
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    path = parts.path
    if (m := _PATCHWORK_SERIES.match(path)) is not None:
        return Wanted(Kind.PATCHWORK, shown, url=f"{origin}{m['root']}/series/{m['id']}/mbox/",
                      credentials=credentials)
    series_id = parse_qs(parts.query).get("series", [""])[0]
    if (m := _PATCHWORK_LIST.match(path)) is not None and series_id.isdigit():
        return Wanted(Kind.PATCHWORK, shown, url=f"{origin}{m['root']}/series/{series_id}/mbox/",
                      credentials=credentials)
    if (m := _PATCHWORK_PATCH.match(path)) is not None:  # as b4 takes it: the user's server
        return Wanted(Kind.MESSAGE_ID, shown, msgid=unquote(m["msgid"]))
    segments = path.split("/")
    at = next((i for i, s in enumerate(segments) if "@" in unquote(s)), None)
    if at is None:
        raise UsageError(f"--series {shown}: not a message's URL on lore (or another "
                         "public-inbox) nor a Patchwork series URL: give "
                         "https://lore.kernel.org/LIST/MESSAGE-ID/ or …/series/ID/mbox/")
    inbox = "/".join(segments[1:at]) or "all"  # lore.kernel.org/MESSAGE-ID: all its lists
    return Wanted(Kind.PUBLIC_INBOX, shown, msgid=unquote(segments[at]),
                  midmask=f"{origin}/{inbox}/%s", credentials=credentials)


def parse(given: str) -> Wanted:
    """What --series names: a URL, a file or directory that is there, or a Message-ID."""
    text = given.strip()
    if re.match(r"^https?://", text, re.I):
        return _url(text)
    path = Path(given).expanduser()
    if path.is_file() or path.is_dir():
        return Wanted(Kind.FILE, given, path=path)
    bare = re.sub(r"^(?:id|mid|rfc822msgid):", "", text, flags=re.I)  # notmuch, RFC 2392
    if (m := _BRACKETED_MSGID.match(bare)) is not None or _BARE_MSGID.match(bare):
        return Wanted(Kind.MESSAGE_ID, given, msgid=m[1] if m else bare)
    raise UsageError(f"--series {given}: no such file or directory, nor a Message-ID "
                     "(<…@…>) or a lore or Patchwork URL")


def _entry(origin: str) -> Path:
    """The cache entry of what was fetched from `origin`: a name from the source alone."""
    folder = cache.cache_root() / "mail"
    folder.mkdir(exist_ok=True)
    return folder / f"{cache.content_key({'recipe': RECIPE, 'origin': origin})}.mbox"


def _b4_env(work: Path, midmask: str | None) -> dict[str, str]:
    """The user's environment (their git config is b4's config), b4's cache in our scratch;
    a URL's server as b4.midmask through git's environment, not b4's argv (ps shows that)."""
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "b4-cache"),
           "XDG_DATA_HOME": str(work / "b4-data")}
    if midmask:
        count = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        env |= {"GIT_CONFIG_COUNT": str(count + 1), f"GIT_CONFIG_KEY_{count}": "b4.midmask",
                f"GIT_CONFIG_VALUE_{count}": midmask}
    return env


def _user_midmask(env: dict[str, str], work: Path) -> str:
    """b4.midmask as b4 will read it (the user's git config), or b4's default."""
    said = proc.run(["git", "config", "--get", "b4.midmask"], what="reading b4.midmask",
                    ok=(0, 1), env=env, cwd=work).strip()
    return said or LORE_MIDMASK


def _thread_url(midmask: str, msgid: str) -> str:
    """The thread's mbox as b4 fetches it: `<midmask with the Message-ID>/t.mbox.gz`."""
    quoted = quote(msgid, safe="@+=")
    at = midmask.replace("%s", quoted) if "%s" in midmask else \
        f"{midmask.rstrip('/')}/{quoted}"
    return f"{at.rstrip('/')}/t.mbox.gz"


def _with_credentials(midmask: str, credentials: tuple[str, str] | None) -> str:
    if credentials is None:
        return midmask
    scheme, _, rest = midmask.partition("://")
    user, password = (quote(c, safe="") for c in credentials)
    return f"{scheme}://{user}:{password}@{rest}"


def _b4_failure(err: str, wanted: Wanted, origin: str, size: int) -> LtobootError:
    """What b4's exit says, as one line of the error family it belongs to."""
    server = f"{urlsplit(origin).scheme}://{urlsplit(origin).netloc}"
    said = re.sub(r"//[^/\s@]+@", "//", redaction.redact(err))  # a URL's credentials
    if size >= MAX_BYTES or "File too large" in said:
        return UsageError(f"--series {wanted.shown}: the thread at {origin} is over "
                          f"{MAX_BYTES / 2**20:g} MiB, more than ltoboot takes: not one patch "
                          "series")
    if "MemoryError" in said:
        return UsageError(f"--series {wanted.shown}: the thread at {origin} unpacks to more "
                          f"than b4 may use ({B4_MEMORY / 2**20:g} MiB): not one patch series "
                          "(a gzip bomb?)")
    if re.search(r"returned an error: 404\b", said):
        return NotFound(f"--series {wanted.shown}: {server} has no message <{wanted.msgid}> "
                        f"(HTTP 404 for {origin}): check the Message-ID"
                        + (", or b4.midmask in your git config" if wanted.kind is
                           Kind.MESSAGE_ID else ""))
    reason = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", said)
    code = re.search(r"returned an error: (\d+)", said)
    if code and code[1].startswith("4"):  # the server says no to us: the URL, or who we are
        return UsageError(f"--series {wanted.shown}: {server} refused {origin} (HTTP "
                          f"{code[1]}): check the URL and its credentials")
    if reason or code or "All hosts failed" in said or "Could not retrieve" in said:
        why = reason[1].strip() if reason else f"HTTP {code[1]}" if code else \
            "no answer"
        return InfraError(f"--series {wanted.shown}: cannot fetch {origin} ({why}): check the "
                          "network or the server")
    lines = [line.strip() for line in said.splitlines() if line.strip()]
    if not lines or all(line.startswith("Looking up") for line in lines):
        return UsageError(f"--series {wanted.shown}: b4 found no thread of <{wanted.msgid}> "
                          f"at {server}: check the Message-ID")
    return InfraError(f"--series {wanted.shown}: b4 could not fetch {origin}: {lines[-1]}")


def _by_b4(wanted: Wanted, origin: str, env: dict[str, str], work: Path, into: Path) -> None:
    """`b4 mbox` of the thread, into `into`."""
    from harness.mail import series  # b4 is found as series.py finds it

    exe = series._b4()
    if exe is None:
        raise InfraError("b4 is not installed: ./setup.sh installs it with ltoboot")
    say(f"series: fetching {origin} with b4")
    # the whole thread on stdout: b4 names no file after what it fetched
    argv = [exe, "--no-stdin", "--quiet", "mbox", "--no-cache", "--outdir", "-", "--",
            wanted.msgid]
    with into.open("wb") as out, proc.running(
            argv, stdout=out, stderr=subprocess.PIPE, cwd=work, env=env,
            limits={resource.RLIMIT_AS: B4_MEMORY, resource.RLIMIT_FSIZE: MAX_BYTES}) as p:
        try:
            _, err = p.communicate(timeout=B4_SECONDS)
        except subprocess.TimeoutExpired:
            raise InfraError(f"--series {wanted.shown}: b4 did not fetch {origin} in "
                             f"{B4_SECONDS:.0f}s: check the network or the server") from None
    size = into.stat().st_size
    if p.returncode != 0 or size == 0 or size >= MAX_BYTES:
        raise _b4_failure(str(err or ""), wanted, origin, size)


def _by_requests(wanted: Wanted, into: Path, policy: retry.Policy) -> None:
    say(f"series: fetching {wanted.url}")
    try:
        fetch._attempts(wanted.url, into, policy, max_bytes=MAX_BYTES,
                        auth=wanted.credentials)
    except LtobootError as e:
        raise type(e)(f"--series {wanted.shown}: {e}") from None


def resolve(given: str, work: Path, policy: retry.Policy = fetch.DEFAULT) -> Source:
    """The local mailbox --series names: the path itself, or what was fetched, saved in the
    cache (`work`: scratch of the caller's, for b4)."""
    wanted = parse(given)
    if wanted.kind is Kind.FILE:
        assert wanted.path is not None
        return Source(wanted.path, wanted.shown, None)
    work.mkdir(parents=True, exist_ok=True)
    env: dict[str, str] = {}
    if wanted.kind is Kind.PATCHWORK:
        origin = wanted.url
    else:
        env = _b4_env(work, _with_credentials(wanted.midmask, wanted.credentials)
                      if wanted.midmask else None)
        origin = _thread_url(_no_credentials(wanted.midmask or _user_midmask(env, work)),
                             wanted.msgid)
    entry = _entry(origin)
    cache.hold(entry)  # no prune takes it while this run reads it
    tmp = entry.with_name(cache.unique_name(f".{entry.name}.") + ".tmp")
    try:
        if wanted.kind is Kind.PATCHWORK:
            _by_requests(wanted, tmp, policy)
        else:
            _by_b4(wanted, origin, env, work, tmp)
        os.replace(tmp, entry)  # whole or not at all, as every cache entry
    finally:
        tmp.unlink(missing_ok=True)
    say(f"series: {origin}: {entry.stat().st_size} bytes, saved as {entry}")
    return Source(entry, wanted.shown, origin)
