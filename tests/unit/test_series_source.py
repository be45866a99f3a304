"""--series as testers copy it: a Message-ID, a lore (public-inbox) URL, a Patchwork series URL,
fetched from a server on loopback that answers as public-inbox and as Patchwork (no network):
b4 finds it through its config (b4.midmask, in a git config file of the test's own), the
series read from the cache is the one read from the same bytes as a file, what was fetched is
named, credentials go to the server and nowhere else, and every failure is one line."""

from __future__ import annotations

import base64
import gzip
import http.server
import json
import mailbox
import re
import socket
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import pytest

from harness.base import progress, retry
from harness.base.errors import InfraError, LtobootError, NotFound, UsageError
from harness.faces import cli
from harness.kernel import patched
from harness.mail import series, series_source
from harness.mail.series_source import Kind
from harness.runs import pipeline
from tests import mailcorpus

THREAD = mailcorpus.CORPUS / "cover-thread-utf8.mbox"
PATCHWORK = mailcorpus.CORPUS / "patchwork-v2-threaded.mbox"
COVER = next(str(m["Message-Id"]).strip("<>") for m in mailbox.mbox(THREAD)
             if "0/2" in str(m["Subject"]))
PATCH = next(str(m["Message-Id"]).strip("<>") for m in mailbox.mbox(THREAD)
             if "2/2" in str(m["Subject"]))
STRANGER = "stranger@example.org"  # the server has a thread for it, without it
FORBIDDEN = "forbidden@example.org"  # the server answers 403 for it
SECRET = "s3cret-pw"
QUICK = retry.Policy(attempts=2, backoff=0.01, backoff_max=0.01, connect_timeout=2.0,
                     read_timeout=5.0)


class _Archive(http.server.BaseHTTPRequestHandler):
    """public-inbox (`/INBOX/MSGID/t.mbox.gz`, gzip) and Patchwork (`/series/ID/mbox/`)."""

    threads: ClassVar[dict[str, bytes]] = {}  # Message-ID -> its thread's mbox
    series: ClassVar[dict[str, bytes]] = {}  # Patchwork series id -> its mbox
    gzipped: ClassVar[dict[str, bytes]] = {}  # series id -> a body sent gzip-encoded
    seen: ClassVar[list[tuple[str, str | None]]] = []  # (path, Authorization)

    def _send(self, code: int, body: bytes, ctype: str, encoding: str = "") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        if encoding:
            self.send_header("Content-Encoding", encoding)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        path = self.path.partition("?")[0]
        if FORBIDDEN.replace("@", "%40") in path:
            self._send(403, b"go away", "text/plain")
        elif (m := re.fullmatch(r"/(?:[\w-]+/)*([^/]+)/t\.mbox\.gz", path)) and \
                unquote(m[1]) in self.threads:
            self._send(200, self.threads[unquote(m[1])], "application/gzip")
        elif (m := re.fullmatch(r"(?:/[\w-]+)*/series/(\d+)/mbox/", path)) and \
                m[1] in self.series:
            self._send(200, self.series[m[1]], "text/plain")
        elif (m := re.fullmatch(r"(?:/[\w-]+)*/series/(\d+)/mbox/", path)) and \
                m[1] in self.gzipped:
            self._send(200, self.gzipped[m[1]], "text/plain", encoding="gzip")
        else:
            self._send(404, b"no such thing", "text/plain")

    do_HEAD = do_GET

    def log_message(self, *args: Any) -> None:
        pass


def _thread(mbox: Path) -> dict[str, bytes]:
    """Every Message-ID of the thread in `mbox` -> the thread, gzipped as public-inbox sends."""
    data = gzip.compress(mbox.read_bytes())
    return {str(m["Message-Id"]).strip("<>"): data for m in mailbox.mbox(mbox)}


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The server, on 127.0.0.1 and for this test alone (stopped at its end, or after two
    minutes whatever happens), and b4 pointed at it by the user's git config."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Archive)
    _Archive.threads = {**_thread(THREAD), STRANGER: gzip.compress(PATCHWORK.read_bytes())}
    _Archive.series = {"7": PATCHWORK.read_bytes()}
    _Archive.gzipped, _Archive.seen = {}, []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    deadline = threading.Timer(120, httpd.shutdown)
    deadline.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    b4_config(tmp_path, monkeypatch, f"{url}/all/%s")
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_PROXY", "*")
    try:
        yield url
    finally:
        deadline.cancel()
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def said(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The progress lines (stderr for a user; the plugin's sink sends them elsewhere)."""
    lines: list[str] = []
    monkeypatch.setattr(progress, "_sink", lines.append)
    return lines


def b4_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, midmask: str) -> None:
    """The user's git config, as b4 reads its b4.* keys: a file of the test's own."""
    config = tmp_path / "gitconfig"
    config.write_text(f"[b4]\n\tmidmask = {midmask}\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def closed_port() -> int:
    """A port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("given", "kind", "msgid", "where", "shown"), [
    ("<20260101.1-joro@example.org>", Kind.MESSAGE_ID, "20260101.1-joro@example.org", "",
     "<20260101.1-joro@example.org>"),
    ("20260101.1-joro@example.org", Kind.MESSAGE_ID, "20260101.1-joro@example.org", "",
     "20260101.1-joro@example.org"),
    ("id:20260101.1-joro@example.org", Kind.MESSAGE_ID, "20260101.1-joro@example.org", "",
     "id:20260101.1-joro@example.org"),
    ("https://lore.kernel.org/linux-kbuild/20260101.1-joro@example.org/T/#u",
     Kind.PUBLIC_INBOX, "20260101.1-joro@example.org", "https://lore.kernel.org/linux-kbuild/%s",
     "https://lore.kernel.org/linux-kbuild/20260101.1-joro@example.org/T/#u"),
    ("https://lore.kernel.org/all/20260101.1-joro%40example.org/?q=x#m1", Kind.PUBLIC_INBOX,
     "20260101.1-joro@example.org", "https://lore.kernel.org/all/%s",
     "https://lore.kernel.org/all/20260101.1-joro%40example.org/?q=x#m1"),
    ("https://lore.kernel.org/r/a%2Fb@example.org", Kind.PUBLIC_INBOX, "a/b@example.org",
     "https://lore.kernel.org/r/%s", "https://lore.kernel.org/r/a%2Fb@example.org"),
    ("https://lore.kernel.org/20260101.1-joro@example.org/", Kind.PUBLIC_INBOX,
     "20260101.1-joro@example.org", "https://lore.kernel.org/all/%s",
     "https://lore.kernel.org/20260101.1-joro@example.org/"),
    ("https://tess:s3cret-pw@inbox.example.org:8080/pub/kbuild/1@x.org/raw",
     Kind.PUBLIC_INBOX, "1@x.org", "https://inbox.example.org:8080/pub/kbuild/%s",
     "https://inbox.example.org:8080/pub/kbuild/1@x.org/raw"),
    ("https://patchwork.kernel.org/series/123/mbox/", Kind.PATCHWORK, "",
     "https://patchwork.kernel.org/series/123/mbox/",
     "https://patchwork.kernel.org/series/123/mbox/"),
    ("https://patchwork.kernel.org/project/linux-kbuild/list/?series=123&state=*",
     Kind.PATCHWORK, "", "https://patchwork.kernel.org/series/123/mbox/",
     "https://patchwork.kernel.org/project/linux-kbuild/list/?series=123&state=*"),
    ("https://patchwork.ozlabs.org/pw/series/9", Kind.PATCHWORK, "",
     "https://patchwork.ozlabs.org/pw/series/9/mbox/", "https://patchwork.ozlabs.org/pw/series/9"),
    ("https://patchwork.kernel.org/project/linux-kbuild/patch/20260101.1-joro@example.org/",
     Kind.MESSAGE_ID, "20260101.1-joro@example.org", "",
     "https://patchwork.kernel.org/project/linux-kbuild/patch/20260101.1-joro@example.org/"),
], ids=["bracketed", "bare", "notmuch-id", "lore-thread-view", "lore-query-fragment",
        "lore-r-encoded-slash", "lore-no-list", "public-inbox-credentials", "patchwork-series",
        "patchwork-list", "patchwork-under-a-path", "patchwork-patch"])
def test_what_testers_copy_is_read_as_what_it_names(given: str, kind: Kind, msgid: str,
                                                   where: str, shown: str) -> None:
    wanted = series_source.parse(given)
    assert (wanted.kind, wanted.msgid, wanted.midmask or wanted.url, wanted.shown) == \
        (kind, msgid, where, shown)
    assert SECRET not in repr(wanted)


@pytest.mark.parametrize(("given", "says"), [
    ("not-there.mbox", "no such file or directory, nor a Message-ID"),
    ("https://lore.kernel.org/linux-kbuild/", "not a message's URL on lore"),
    ("https://u:s3cret-pw@patchwork.example.org/project/x/list/", "not a message's URL"),
    ("https://lore.kernel.org:port/x/1@x.org/", "--series https://lore.kernel.org:port/x/1@x.org/:"
     " not a valid URL"),
])
def test_what_names_nothing_is_one_line(given: str, says: str) -> None:
    with pytest.raises(UsageError, match=re.escape(says)) as e:
        series_source.parse(given)
    assert "\n" not in str(e.value) and SECRET not in str(e.value)


def test_a_file_a_directory_and_a_maildir_are_read_where_they_are(tmp_path: Path) -> None:
    for path in (THREAD, mailcorpus.CORPUS / "v1-and-patchv2"):
        assert series_source.resolve(str(path), tmp_path) == \
            series_source.Source(path, str(path), None)


@pytest.mark.parametrize("given", ["{cover}", "<{cover}>", "{patch}"],
                         ids=["bare", "bracketed", "a-patch-of-it"])
def test_a_message_id_is_fetched_by_b4_from_the_server_its_config_names(
        given: str, archive: str, tmp_path: Path, said: list[str]) -> None:
    src = series_source.resolve(given.format(cover=COVER, patch=PATCH), tmp_path / "work")
    msgid = PATCH if "patch" in given else COVER
    assert src.origin == f"{archive}/all/{msgid}/t.mbox.gz"
    assert src.path.parent == tmp_path / "cache" / "mail" and src.path.suffix == ".mbox"
    assert [p for p, _ in _Archive.seen] == [f"/all/{msgid.replace('@', '%40')}/t.mbox.gz"]
    assert f"ltoboot: series: fetching {src.origin} with b4" in said
    assert any(line.endswith(f"saved as {src.path}") for line in said)
    fetched = series.read(src.path, tmp_path, shown=src.shown, origin=src.origin)
    assert fetched.key() == series.read(THREAD, tmp_path).key()
    assert fetched.origin == src.origin and fetched.cover is not None
    assert series.describe(fetched)["origin"] == src.origin


@pytest.mark.parametrize("tail", ["/T/#u", "/", "?q=x"])
def test_a_lore_url_is_fetched_from_its_own_server_and_list(
        tail: str, archive: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    b4_config(tmp_path, monkeypatch, f"http://127.0.0.1:{closed_port()}/all/%s")  # not asked
    src = series_source.resolve(f"{archive}/linux-kbuild/{COVER}{tail}", tmp_path / "work")
    assert src.origin == f"{archive}/linux-kbuild/{COVER}/t.mbox.gz"
    assert [p for p, _ in _Archive.seen] == [f"/linux-kbuild/{COVER.replace('@', '%40')}"
                                             "/t.mbox.gz"]
    assert series.read(src.path, tmp_path).key() == series.read(THREAD, tmp_path).key()


@pytest.mark.parametrize("given", ["/series/7/mbox/", "/project/kbuild/list/?series=7"])
def test_a_patchwork_series_is_fetched_and_read_whole(given: str, archive: str,
                                                      tmp_path: Path) -> None:
    src = series_source.resolve(archive + given, tmp_path / "work", QUICK)
    assert src.origin == f"{archive}/series/7/mbox/"
    assert src.path.read_bytes() == PATCHWORK.read_bytes()
    fetched = series.read(src.path, tmp_path, origin=src.origin)
    assert fetched.key() == series.read(PATCHWORK, tmp_path).key()
    assert [p.number for p in fetched.patches] == ["1/2", "2/2"]


def test_a_second_fetch_replaces_the_first(archive: str, tmp_path: Path) -> None:
    """A thread gains replies, a Patchwork series its late patches: one entry, the newest."""
    first = series_source.resolve(archive + "/series/7/mbox/", tmp_path / "w", QUICK)
    _Archive.series["7"] = PATCHWORK.read_bytes() + b"\n"
    again = series_source.resolve(archive + "/series/7/mbox/", tmp_path / "w", QUICK)
    assert again.path == first.path and again.path.read_bytes().endswith(b"\n\n")
    assert [p.name for p in again.path.parent.iterdir() if not p.name.startswith(".")] == \
        [again.path.name]


@pytest.mark.parametrize("where", ["/linux-kbuild/{cover}/", "/series/7/mbox/"])
def test_credentials_go_to_the_server_and_nowhere_else(
        where: str, archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        said: list[str]) -> None:
    given = archive.replace("://", f"://tess:{SECRET}@") + where.format(cover=COVER)
    src = series_source.resolve(given, tmp_path / "work", QUICK)
    sent = base64.b64encode(f"tess:{SECRET}".encode()).decode()
    assert [a for _, a in _Archive.seen] == [f"Basic {sent}"]
    assert SECRET not in f"{src}" and src.origin is not None and "tess" not in src.origin
    missing = archive.replace("://", f"://tess:{SECRET}@") + where.format(
        cover="nobody@example.org").replace("/7/", "/8/")
    with pytest.raises(LtobootError) as e:
        series_source.resolve(missing, tmp_path / "work", QUICK)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + str(e.value) + "\n".join(said)
    for f in (tmp_path / "cache").rglob("*"):
        assert not f.is_file() or SECRET.encode() not in f.read_bytes(), f


def _refused() -> str:
    return f"http://127.0.0.1:{closed_port()}"


@pytest.mark.parametrize(("given", "error", "says"), [
    ("{cover}", InfraError, "cannot fetch http://127.0.0.1:{port}/all/{cover}/t.mbox.gz "
     "(Connection refused): check the network"),
    ("{refused}/linux-kbuild/{cover}/", InfraError, "(Connection refused)"),
    ("nobody@example.org", NotFound, "has no message <nobody@example.org> (HTTP 404"),
    (STRANGER, UsageError, f"b4 found no thread of <{STRANGER}> at http://127.0.0.1:"),
    (FORBIDDEN, UsageError, "(HTTP 403): check the URL and its credentials"),
    ("{archive}/series/8/mbox/", NotFound, "series/8/mbox/: HTTP 404 Not Found"),
    ("{refused}/series/7/mbox/", InfraError, "Connection refused after 2 attempts"),
], ids=["server-down", "lore-url-server-down", "404", "not-in-the-thread", "403", "patchwork-404",
        "patchwork-down"])
def test_a_server_that_is_not_there_or_says_no_is_one_line(
        given: str, error: type[LtobootError], says: str, archive: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    if given == "{cover}":
        b4_config(tmp_path, monkeypatch, f"http://127.0.0.1:{port}/all/%s")
    refused = f"http://127.0.0.1:{port}"
    text = given.format(cover=COVER, refused=refused, archive=archive)
    with pytest.raises(error, match=re.escape(says.format(port=port, cover=COVER))) as e:
        series_source.resolve(text, tmp_path / "work", QUICK)
    assert str(e.value).startswith(f"--series {text}: ") and "\n" not in str(e.value)
    assert not [p for p in (tmp_path / "cache" / "mail").iterdir()
                if p.suffix in (".mbox", ".tmp")]


def test_the_cli_says_a_fetch_failure_in_one_line_and_exits_2(
        archive: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("Makefile", "Kconfig"):
        (tmp_path / name).write_text("")
    assert cli.main(["tested-by", "--series", "nobody@example.org", "--kernel-src",
                     str(tmp_path), "--name", "T", "--email", "t@e.org"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("ltoboot: error: --series nobody@example.org: ")
    assert "HTTP 404" in err[-1] and not any("Traceback" in line for line in err)


def _bomb(size: int) -> bytes:
    """gzip members of zeros (a gzip stream may have many): `size` bytes unpacked."""
    member = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    return member * (size // (16 << 20))


def test_a_gzip_bomb_for_b4_ends_within_its_memory(
        archive: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_source, "B4_MEMORY", 384 << 20)
    _Archive.threads[COVER] = _bomb(1 << 30)
    with pytest.raises(UsageError, match=r"unpacks to more than b4 may use .* gzip bomb"):
        series_source.resolve(COVER, tmp_path / "work")


def test_a_thread_over_the_cap_is_refused(archive: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_source, "MAX_BYTES", THREAD.stat().st_size // 2)
    with pytest.raises(UsageError, match=r"the thread at .* is over .* MiB, more than ltoboot"):
        series_source.resolve(COVER, tmp_path / "work")


@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "gzip-encoded"])
def test_a_patchwork_answer_over_the_cap_is_refused(encoded: bool, archive: str,
                                                    tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted as it is decoded: a server that compresses anyway sends no bomb past it."""
    monkeypatch.setattr(series_source, "MAX_BYTES", 1 << 20)
    if encoded:
        _Archive.series.pop("7")
        _Archive.gzipped["7"] = zlib.compress(b"\0" * (64 << 20), 9, wbits=31)
    else:
        _Archive.series["7"] = b"x" * (2 << 20)
    with pytest.raises(UsageError, match=r"over 1 MiB, more than ltoboot takes"):
        series_source.resolve(f"{archive}/series/7/mbox/", tmp_path / "work", QUICK)


def test_tested_by_takes_a_message_id_and_names_what_it_fetched(
        archive: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], said: list[str]) -> None:
    """The command a tester runs with what they copied; no kernel: applying and the checks
    are stood in for (tests/test_tested_by_series.py does them for real)."""
    from harness.checks import CheckResult
    from harness.reports.results import KernelReport

    monkeypatch.setattr(series, "apply", lambda s, repo, base: patched.Applied(
        tmp_path, "0" * 40, "v1", "tree at v1 + 2 patches", "k"))
    passed = KernelReport(label="x86_64-thin", results=[CheckResult("basic", True, "ok")])
    monkeypatch.setattr(pipeline, "check_kernels", lambda *a, **k: iter([passed]))
    for name in ("Makefile", "Kconfig"):
        (tmp_path / name).write_text("")
    assert cli.main(["tested-by", "--series", f"<{COVER}>", "--kernel-src", str(tmp_path),
                     "--arch", "x86_64", "--name", "T", "--email", "t@e.org", "--format",
                     "json"]) == 0
    out = capsys.readouterr()
    facts = json.loads(out.out)
    origin = f"{archive}/all/{COVER}/t.mbox.gz"
    assert facts["series"]["origin"] == origin
    assert Path(facts["series"]["mbox"]).parent == tmp_path / "cache" / "mail"
    assert f"ltoboot: series: fetching {origin} with b4" in said
    assert any(f'"Return 1 in the wörld" from {origin}: 2 patches' in line for line in said)
