"""Downloads against a real HTTP server on 127.0.0.1 that misbehaves on purpose, and safe
extraction of modules tarballs. Each test has its own empty cache."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.base import progress
from harness.base.errors import InfraError, NotFound, UsageError
from harness.kernel import fetch, prebuilt

FAST = fetch.Policy(attempts=4, backoff=0.01, backoff_max=0.05, retry_after_max=0.5,
                    connect_timeout=2, read_timeout=5)
BODY = os.urandom(300_000)
SHA = hashlib.sha256(BODY).hexdigest()


@dataclass
class Reply:
    status: int = 200
    body: bytes = BODY
    headers: dict[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # close the connection after this many body bytes
    delay: float = 0.0
    gzip: bool = False  # send the body with Content-Encoding: gzip, whatever was asked


class Script:
    """What the server answers, per path, one Reply per request (the last one repeats)."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.gets: Counter[str] = Counter()
        self.asked: dict[str, list[dict[str, str]]] = {}  # request headers, per path
        self.lock = threading.Lock()

    def next(self, path: str, headers: dict[str, str] | None = None) -> Reply:
        with self.lock:
            self.gets[path] += 1
            self.asked.setdefault(path, []).append(headers or {})
            queue = self.replies.get(path) or [Reply(404, b"no")]
            return queue.pop(0) if len(queue) > 1 else queue[0]


class Handler(http.server.BaseHTTPRequestHandler):
    script: Script

    def do_GET(self) -> None:
        r = self.script.next(self.path, dict(self.headers.items()))
        time.sleep(r.delay)
        body = gzip.compress(r.body) if r.gzip else r.body
        self.send_response(r.status)
        self.send_header("Content-Length", str(len(body)))
        if r.gzip:
            self.send_header("Content-Encoding", "gzip")
        for k, v in r.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body[:r.cut_after] if r.cut_after is not None else body)
        if r.cut_after is not None:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("H", (Handler,), {"script": script})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cached_files(cache: Path) -> list[Path]:
    """Downloaded data in the cache, complete or not (failure records aside)."""
    return [p for p in (cache / "downloads").rglob("*")
            if p.is_file() and not p.name.endswith((".failed.json", ".lock"))]


def test_503_twice_then_200_succeeds(server: tuple[str, Script]) -> None:
    base, script = server
    script.replies["/a"] = [Reply(503), Reply(503), Reply()]
    path = fetch.fetch(base + "/a", SHA, FAST)
    assert path.read_bytes() == BODY
    assert script.gets["/a"] == 3
    # a second ask is a cache hit: no request
    assert fetch.fetch(base + "/a", SHA, FAST) == path and script.gets["/a"] == 3


def test_retry_after_is_honoured(server: tuple[str, Script]) -> None:
    base, script = server
    script.replies["/a"] = [Reply(429, headers={"Retry-After": "1"}), Reply()]
    started = time.monotonic()
    fetch.fetch(base + "/a", SHA, FAST)
    # 1 s asked, capped at FAST.retry_after_max; backoff alone would be 0.01 s
    assert time.monotonic() - started >= FAST.retry_after_max * 0.9
    assert fetch.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_404_is_one_clear_error_without_retries(server: tuple[str, Script],
                                                empty_cache: Path) -> None:
    base, script = server
    with pytest.raises(NotFound) as e:
        fetch.fetch(base + "/missing", None, FAST)
    assert script.gets["/missing"] == 1
    assert "HTTP 404" in str(e.value) and "\n" not in str(e.value)
    assert cached_files(empty_cache) == []


def test_body_cut_short_is_retried_and_never_cached(server: tuple[str, Script],
                                                    empty_cache: Path) -> None:
    base, script = server
    script.replies["/a"] = [Reply(cut_after=1000), Reply()]
    assert fetch.fetch(base + "/a", SHA, FAST).read_bytes() == BODY
    assert script.gets["/a"] == 2
    script.replies["/b"] = [Reply(cut_after=1000)]  # always cut
    with pytest.raises(InfraError) as e:
        fetch.fetch(base + "/b", None, FAST)
    assert script.gets["/b"] == FAST.attempts and "after 4 attempts" in str(e.value)
    assert [p.read_bytes() for p in cached_files(empty_cache)
            if p.name == fetch.DATA] == [BODY]  # only /a's complete file


def test_wrong_sha256_is_refused_and_not_cached(server: tuple[str, Script],
                                                empty_cache: Path) -> None:
    base, script = server
    script.replies["/a"] = [Reply()]
    with pytest.raises(UsageError) as e:
        fetch.fetch(base + "/a", "0" * 64, FAST)
    assert f"sha256 is {SHA}, expected {'0' * 64}" in str(e.value)
    assert cached_files(empty_cache) == []


def test_a_gzip_encoded_body_is_counted_on_the_wire(server: tuple[str, Script]) -> None:
    base, script = server
    script.replies["/a"] = [Reply(gzip=True)]
    assert fetch.fetch(base + "/a", SHA, FAST).read_bytes() == BODY
    assert script.asked["/a"][0]["Accept-Encoding"] == "identity"
    script.replies["/cut"] = [Reply(gzip=True, cut_after=5000)]
    with pytest.raises(InfraError, match=f"after {FAST.attempts} attempts"):
        fetch.fetch(base + "/cut", None, FAST)


def test_without_a_checksum_a_cached_url_is_revalidated(server: tuple[str, Script]) -> None:
    base, script = server
    v1, v2 = b"kernel one" * 1000, b"kernel two" * 1000
    script.replies["/latest"] = [Reply(body=v1, headers={"ETag": '"v1"'}), Reply(304, b""),
                                 Reply(body=v2, headers={"ETag": '"v2"'})]
    first = fetch.fetch(base + "/latest", None, FAST)
    assert first.read_bytes() == v1
    fetch._CURRENT.clear()  # a new process
    assert fetch.fetch(base + "/latest", None, FAST) == first  # 304: still current
    assert script.asked["/latest"][1]["If-None-Match"] == '"v1"'
    fetch._CURRENT.clear()
    assert fetch.fetch(base + "/latest", None, FAST).read_bytes() == v2  # it moved
    assert script.gets["/latest"] == 3 and first.read_bytes() == v1  # the old entry is whole


def test_without_validators_a_cached_url_is_downloaded_and_compared(
        server: tuple[str, Script]) -> None:
    base, script = server
    script.replies["/plain"] = [Reply(body=b"same" * 100), Reply(body=b"same" * 100),
                                Reply(body=b"new!" * 100)]
    first = fetch.fetch(base + "/plain", None, FAST)
    fetch._CURRENT.clear()
    assert fetch.fetch(base + "/plain", None, FAST) == first
    assert "If-None-Match" not in script.asked["/plain"][1]
    fetch._CURRENT.clear()
    assert fetch.fetch(base + "/plain", None, FAST).read_bytes() == b"new!" * 100


@pytest.mark.parametrize("url, says", [
    ("http:///x", "no host"), ("https://:80/bzImage", "no host"),
    ("http://host:port/x", "not a valid URL"), ("ftp://example.org/bzImage", "ftp"),
])
def test_urls_that_cannot_be_fetched_are_one_clear_error(url: str, says: str) -> None:
    with pytest.raises(UsageError, match=says):
        fetch.fetch(url)


def test_a_remote_manifest_names_files_of_its_own_origin_only(
        server: tuple[str, Script], tmp_path: Path) -> None:
    base, script = server
    local = tmp_path / "secret"
    local.write_text("not for a remote manifest")
    for name, part in (("file", local.as_uri()), ("other", "http://127.0.0.2:9/bzImage")):
        script.replies[f"/{name}.json"] = [Reply(body=f'{{"kernel": "{part}"}}'.encode())]
        with pytest.raises(UsageError, match="outside the manifest's origin"):
            prebuilt.locate(f"{base}/{name}.json")


def test_unsupported_scheme(empty_cache: Path) -> None:
    with pytest.raises(UsageError, match="unsupported URL scheme 'ftp'"):
        fetch.fetch("ftp://example.org/bzImage")


def test_workers_share_one_download(server: tuple[str, Script], empty_cache: Path) -> None:
    base, script = server
    script.replies["/a"] = [Reply(delay=1.0)]
    code = ("import sys; from harness.kernel import fetch; "
            f"print(fetch.fetch(sys.argv[1], {SHA!r}))")
    procs = [subprocess.Popen([sys.executable, "-c", code, base + "/a"], text=True,
                              stdout=subprocess.PIPE, env={**os.environ}) for _ in range(4)]
    outs = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert script.gets["/a"] == 1
    assert len(outs) == 1 and Path(outs.pop()).read_bytes() == BODY


def _tar(entries: list[tarfile.TarInfo], tmp_path: Path) -> Path:
    path = tmp_path / "modules.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        for info in entries:
            data = b"x" * info.size
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, (1 if kind == tarfile.REGTYPE else 0)
    return info


@pytest.mark.parametrize("entry, says", [
    (_entry("../evil"), "points outside"),
    (_entry("lib/modules/../../../evil"), "points outside"),
    (_entry("/etc/evil"), "points outside"),
    (_entry("lib/null", tarfile.CHRTYPE), "device"),
    (_entry("lib/fifo", tarfile.FIFOTYPE), "fifo"),
], ids=["dotdot", "nested-dotdot", "absolute", "device", "fifo"])
def test_unsafe_tarballs_are_refused(entry: tarfile.TarInfo, says: str, tmp_path: Path) -> None:
    tar = _tar([_entry("lib/modules/6.1/kernel/ok.ko"), entry], tmp_path)
    dest = tmp_path / "out"
    with pytest.raises(UsageError, match=says):
        prebuilt.extract_modules(tar, dest, "modules.tar.xz")
    assert not dest.exists() and not (tmp_path / "evil").exists()


@pytest.fixture
def said() -> Iterator[list[str]]:
    """The progress lines ltoboot says meanwhile."""
    lines: list[str] = []
    previous = progress.set_sink(lines.append)
    yield lines
    progress.set_sink(previous)


@pytest.mark.parametrize("link", [
    _entry("lib/modules/6.1/build", tarfile.SYMTYPE, "/usr/src/linux"),
    _entry("lib/modules/6.1/source", tarfile.SYMTYPE, "/home/builder/linux"),
    _entry("lib/up", tarfile.SYMTYPE, "../../etc"),
    _entry("lib/hard", tarfile.LNKTYPE, "../etc/passwd"),
    _entry("lib/modules/6.1/alias.ko", tarfile.SYMTYPE, "kernel/ok.ko"),
], ids=["build-link", "source-link", "up-symlink", "hardlink", "inner-link"])
def test_links_are_left_out_with_a_note(link: tarfile.TarInfo, tmp_path: Path,
                                        said: list[str]) -> None:
    tar = _tar([_entry("lib/modules/6.1/kernel/ok.ko"), link], tmp_path)
    prebuilt.extract_modules(tar, tmp_path / "out", "modules.tar.xz")
    assert (tmp_path / "out/lib/modules/6.1/kernel/ok.ko").read_bytes() == b"x"
    assert (tmp_path / "out/lib/modules/6.1/modules.dep").exists()  # depmod ran
    assert not os.path.lexists(tmp_path / "out" / link.name)
    assert f"ltoboot: modules.tar.xz: left out 1 link(s), a modules tree needs none: " \
        f"{link.name}" in said


def test_a_chain_of_symlinks_writes_nothing_outside(tmp_path: Path) -> None:
    """The deep-path chain that beat tarfile's data filter before Python 3.11.13
    (CVE-2025-4517): links that each look inside, a file written through them."""
    depth = 16
    chain = [_entry("lib/" + "d/" * i + "l", tarfile.SYMTYPE, "../" * (i + 1) + "x")
             for i in range(depth)]
    escape = _entry("lib/" + "d/" * (depth - 1) + "l/../../../../escaped")
    through = _entry("lib/" + "d/" * (depth - 1) + "l/escaped-too")
    tar = _tar([_entry("lib/modules/6.1/kernel/ok.ko"), *chain, through], tmp_path)
    out = tmp_path / "deep" / "out"
    prebuilt.extract_modules(tar, out, "modules.tar.xz")
    written = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
               if p.is_file() or p.is_symlink()}
    assert "deep/out/lib/modules/6.1/kernel/ok.ko" in written
    assert {w for w in written if not w.startswith("deep/out/")} == {"modules.tar.xz"}
    assert not any(p.is_symlink() for p in out.rglob("*"))
    with pytest.raises(UsageError, match="points outside"):
        prebuilt.extract_modules(_tar([escape], tmp_path), tmp_path / "out2", "modules.tar.xz")
    assert not (tmp_path / "escaped").exists()


@pytest.fixture
def tiny_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A cache on a 256 KiB tmpfs (needs root, as CI and setup.sh have)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    monkeypatch.setenv("LTOBOOT_CACHE", str(mnt))
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def test_disk_full_is_one_clear_error_and_leaves_nothing(server: tuple[str, Script],
                                                         tiny_cache: Path) -> None:
    base, script = server
    script.replies["/a"] = [Reply()]  # 300 kB into 256 KiB
    with pytest.raises(InfraError) as e:
        fetch.fetch(base + "/a", SHA, FAST)
    assert "No space left on device" in str(e.value) and "free space" in str(e.value)
    assert script.gets["/a"] == 1  # not retried: the network was fine
    assert cached_files(tiny_cache) == []
