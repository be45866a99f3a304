"""Downloads into the cache: requests streams, tenacity retries, nothing partial is kept.

A downloaded file is one cache entry (downloads/<key>/: the file and a meta.json), keyed by its
content's sha256. It is streamed to a temporary directory, hashed on the way and published by
rename only when complete (every byte the server announced) and verified, so a truncated or
mismatching file never enters the cache, and several workers wait for one download.

With a sha256 to check against, an entry is reused as it is. Without one, a URL's content can
move (a `latest/` directory), so a per-URL record keeps the server's validators, and reusing
the entry asks the server first (If-None-Match / If-Modified-Since, or a new download that is
compared), once per process.
"""

from __future__ import annotations

import email.utils
import errno
import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import tenacity

from harness.base import cache, retry
from harness.base.errors import InfraError, NotFound, UsageError
from harness.base.progress import say

SCHEMES = ("http", "https", "file")
DATA = "data"
PROGRESS_BYTES = 8 << 20  # files at least this big show progress
PROGRESS_SECONDS = 5.0
CHUNK = 1 << 16
RECIPE = 1


Policy = retry.Policy
Retryable = retry.Transient  # what _get raises for a failure worth another attempt
DEFAULT = Policy()


def check_url(url: str) -> str:
    """The URL's scheme, or a UsageError naming what is wrong with it."""
    try:
        parts = urlparse(url)
        parts.port  # noqa: B018  (a port that is not a number raises here)
    except ValueError as e:
        raise UsageError(f"{url}: not a valid URL ({e})") from None
    if parts.scheme not in SCHEMES:
        raise UsageError(f"{url}: unsupported URL scheme {parts.scheme!r}; use http://, "
                         "https://, file:// or a local path")
    if parts.scheme != "file" and not parts.hostname:
        raise UsageError(f"{url}: no host in the URL; give http(s)://HOST/path")
    return parts.scheme


def local_path(url: str) -> Path | None:
    """The path of a file:// URL, None for http(s)."""
    return Path(unquote(urlparse(url).path)) if check_url(url) == "file" else None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass(frozen=True)
class Got:
    sha256: str
    etag: str | None
    last_modified: str | None


def _over(url: str, max_bytes: int) -> UsageError:
    return UsageError(f"{url}: over {max_bytes / 2**20:g} MiB, more than ltoboot takes from it "
                      "(not retried)")


def _reason(e: Exception) -> str:
    """Why a connection failed, short: requests nests the OS's reason in a paragraph."""
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(e))
    return f"{type(e).__name__}: {m.group(1).strip()}" if m else f"{type(e).__name__}: {e}"


def _get(session: requests.Session, url: str, dest: Path, policy: Policy,
         headers: dict[str, str], max_bytes: int | None = None) -> Got | None:
    """One attempt: stream `url` to `dest`; None when the server says our copy is current
    (304). Raises Retryable or UsageError (also for a body over `max_bytes`, counted as it is
    decoded: a compressed bomb stops there)."""
    try:
        with session.get(url, stream=True, headers=headers,
                         timeout=(policy.connect_timeout, policy.read_timeout)) as r:
            if r.status_code == 304 and headers:
                return None
            if r.status_code == 429 or r.status_code >= 500:
                raise Retryable(f"HTTP {r.status_code} {r.reason}",
                                retry_after(r.headers.get("Retry-After")))
            if r.status_code >= 400:
                error = NotFound if r.status_code in (404, 410) else UsageError
                raise error(f"{url}: HTTP {r.status_code} {r.reason} (not retried); "
                                 "check the URL")
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if max_bytes is not None and total is not None and total > max_bytes:
                raise _over(url, max_bytes)
            digest, got = hashlib.sha256(), 0
            started = last = time.monotonic()
            with dest.open("wb") as f:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if max_bytes is not None and got > max_bytes:
                        raise _over(url, max_bytes)
                    now = time.monotonic()
                    if (total or got) >= PROGRESS_BYTES and now - last >= PROGRESS_SECONDS:
                        last = now
                        of = f"/{total / 2**20:.1f}" if total else ""
                        say(f"fetching {url}: {got / 2**20:.1f}{of} MiB, {now - started:.0f}s")
            # Content-Length counts the bytes on the wire, which a Content-Encoding compresses
            wire = r.raw.tell()
            if total is not None and wire != total:
                raise Retryable(f"body cut short: {wire} of {total} bytes")
            return Got(digest.hexdigest(), r.headers.get("ETag"),
                       r.headers.get("Last-Modified"))
    except (requests.ConnectionError, requests.Timeout,
            requests.exceptions.ChunkedEncodingError) as e:  # the last: a body cut short
        raise Retryable(_reason(e)) from None


def _attempts(url: str, dest: Path, policy: Policy, headers: dict[str, str] | None = None,
              *, max_bytes: int | None = None, auth: tuple[str, str] | None = None
              ) -> tuple[Got | None, list[str]]:
    """_get, retried as the policy says; also the errors that were retried. `auth` goes to
    the server (HTTP Basic), never into `url`, which messages name."""
    attempts: list[str] = []

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        attempts.append(str(error))
        wait = state.next_action.sleep if state.next_action else 0
        say(f"fetching {url}: {error}; retry {state.attempt_number}/{policy.attempts - 1} "
            f"in {wait:.1f}s")

    retrying = retry.retrying(policy, before_sleep=log_retry)
    with requests.Session() as session:
        session.headers["User-Agent"] = "ltoboot"
        session.headers["Accept-Encoding"] = "identity"  # the file as it is, byte for byte
        session.auth = auth
        try:
            return retrying(_get, session, url, dest, policy, headers or {},
                            max_bytes), attempts
        except Retryable as e:
            raise InfraError(f"{url}: {e} after {policy.attempts} attempts; check the network "
                             "or the server") from None


def _finish(tmp: Path, url: str, got: Got, retries: list[str], started: float) -> None:
    size = (tmp / DATA).stat().st_size
    (tmp / "meta.json").write_text(json.dumps({"url": url, "sha256": got.sha256, "size": size,
                                               "retries": retries}, indent=2))
    if size >= PROGRESS_BYTES:
        say(f"fetched {url}: {size / 2**20:.1f} MiB in {time.monotonic() - started:.1f}s")


def _download(tmp: Path, url: str, sha256: str, policy: Policy) -> None:
    tmp.mkdir()
    started = time.monotonic()
    got, retries = _attempts(url, tmp / DATA, policy)
    assert got is not None
    if got.sha256 != sha256.lower():
        raise UsageError(f"{url}: sha256 is {got.sha256}, expected {sha256}; the file was not "
                         "kept (wrong URL or checksum?)")
    _finish(tmp, url, got, retries, started)


def _entry(sha256: str) -> Path:
    """The cache entry of a downloaded file, by its content."""
    return cache.cache_root() / "downloads" / cache.content_key(
        {"recipe": RECIPE, "sha256": sha256.lower()})


_CURRENT: dict[str, Path] = {}  # URLs without a checksum this process has revalidated


def _fetch_current(url: str, policy: Policy) -> Path:
    """The content `url` has now: the cached copy if the server says it is current (or sends
    the same bytes again), else the new content, which becomes the cached copy."""
    if url in _CURRENT and _CURRENT[url].exists():
        return _CURRENT[url]
    record = cache.cache_root() / "downloads" / "urls" / (
        cache.content_key({"recipe": RECIPE, "url": url}) + ".json")
    record.parent.mkdir(parents=True, exist_ok=True)
    with cache.locked(record.with_name(record.name + ".lock"),
                      f"waiting for another process fetching {url}"):
        try:
            known = json.loads(record.read_text())
        except (OSError, ValueError):
            known = None
        headers = {}
        if known is not None and (_entry(known["sha256"]) / DATA).is_file():
            if known.get("etag"):
                headers["If-None-Match"] = known["etag"]
            if known.get("last_modified"):
                headers["If-Modified-Since"] = known["last_modified"]
        tmp = record.parent.parent / cache.unique_name(".tmp-url-")
        tmp.mkdir()
        try:
            started = time.monotonic()
            got, retries = _attempts(url, tmp / DATA, policy, headers)
            if got is None:  # 304: what we have is current
                assert known is not None
                path = _entry(known["sha256"]) / DATA
            else:
                entry = _entry(got.sha256)
                if not entry.exists():
                    _finish(tmp, url, got, retries, started)
                    os.rename(tmp, entry)
                path = entry / DATA
                cache.write_atomic(record, json.dumps({"url": url, "sha256": got.sha256,
                                                       "etag": got.etag,
                                                       "last_modified": got.last_modified}))
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InfraError(f"{url}: no space left in the cache ({e.strerror}): free "
                                 "space or set LTOBOOT_CACHE elsewhere") from None
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _CURRENT[url] = path
    return path


def fetch(url: str, sha256: str | None = None, policy: Policy = DEFAULT) -> Path:
    """A local file with the content of `url` (checked against `sha256` when given).

    file:// URLs and their checksums are read in place; http(s) ones go through the cache.
    """
    path = local_path(url)
    if path is not None:
        if not path.is_file():
            raise NotFound(f"{url}: no such file")
        if sha256 is not None and (got := cache.file_sha256(path)) != sha256.lower():
            raise UsageError(f"{url}: sha256 is {got}, expected {sha256}")
        return path
    if sha256 is None:
        return _fetch_current(url, policy)
    entry = cache.publish(_entry(sha256), lambda tmp: _download(tmp, url, sha256, policy))
    return entry / DATA


def fetch_optional(url: str, policy: Policy = DEFAULT) -> Path | None:
    """fetch(url), or None when there is no such file (404, 410, a missing file://)."""
    try:
        return fetch(url, policy=policy)
    except NotFound:
        return None
