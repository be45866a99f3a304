"""Downloads into the cache: requests streams, tenacity retries, nothing partial is kept.

A download is one cache entry (downloads/<key>/: the file and a meta.json), keyed by the URL
and the sha256 it must have. It is streamed to a temporary directory, hashed on the way and
published by rename only when complete and verified, so a truncated or mismatching file never
enters the cache, and several workers asking for the same URL wait for one download.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import requests
import tenacity

from harness import cache
from harness.errors import InfraError, NotFound, UsageError
from harness.progress import say

SCHEMES = ("http", "https", "file")
DATA = "data"
PROGRESS_BYTES = 8 << 20  # files at least this big show progress
PROGRESS_SECONDS = 5.0
CHUNK = 1 << 16
RECIPE = 1


@dataclass(frozen=True)
class Policy:
    """How hard to try. Tests shrink the waits; users keep the defaults."""

    attempts: int = 5
    backoff: float = 1.0  # first wait in seconds, doubled each retry ...
    backoff_max: float = 30.0  # ... up to this
    retry_after_max: float = 120.0  # a server's Retry-After is honoured up to this
    connect_timeout: float = 10.0
    read_timeout: float = 60.0


DEFAULT = Policy()


class Retryable(Exception):
    """A failure worth another attempt: connection trouble, 429, 5xx, a short body."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def check_url(url: str) -> str:
    """The URL's scheme, or a UsageError naming the schemes we take."""
    scheme = urlparse(url).scheme
    if scheme not in SCHEMES:
        raise UsageError(f"{url}: unsupported URL scheme {scheme!r}; use http://, https://, "
                         "file:// or a local path")
    return scheme


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


def _wait(policy: Policy) -> tenacity.wait.wait_base:
    exponential = tenacity.wait_exponential(multiplier=policy.backoff, max=policy.backoff_max)

    class Wait(tenacity.wait.wait_base):
        def __call__(self, state: tenacity.RetryCallState) -> float:
            wait = exponential(state)
            error = state.outcome.exception() if state.outcome else None
            asked = getattr(error, "retry_after", None)
            if asked is not None:
                wait = max(wait, min(asked, policy.retry_after_max))
            return float(wait)

    return Wait()


def _get(session: requests.Session, url: str, dest: Path, policy: Policy) -> str:
    """One attempt: stream `url` to `dest`, return its sha256. Raises Retryable or UsageError."""
    try:
        with session.get(url, stream=True, timeout=(policy.connect_timeout,
                                                    policy.read_timeout)) as r:
            if r.status_code == 429 or r.status_code >= 500:
                raise Retryable(f"HTTP {r.status_code} {r.reason}",
                                retry_after(r.headers.get("Retry-After")))
            if r.status_code >= 400:
                error = NotFound if r.status_code in (404, 410) else UsageError
                raise error(f"{url}: HTTP {r.status_code} {r.reason} (not retried); "
                                 "check the URL")
            length = r.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            digest, got = hashlib.sha256(), 0
            started = last = time.monotonic()
            with dest.open("wb") as f:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    now = time.monotonic()
                    if (total or got) >= PROGRESS_BYTES and now - last >= PROGRESS_SECONDS:
                        last = now
                        of = f"/{total / 2**20:.1f}" if total else ""
                        say(f"fetching {url}: {got / 2**20:.1f}{of} MiB, {now - started:.0f}s")
            if total is not None and got != total:
                raise Retryable(f"body cut short: {got} of {total} bytes")
            return digest.hexdigest()
    except (requests.ConnectionError, requests.Timeout,
            requests.exceptions.ChunkedEncodingError) as e:  # the last: a body cut short
        raise Retryable(f"{type(e).__name__}: {e}") from None


def _download(tmp: Path, url: str, sha256: str | None, policy: Policy) -> None:
    tmp.mkdir()
    dest = tmp / DATA
    attempts = []

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        attempts.append(str(error))
        wait = state.next_action.sleep if state.next_action else 0
        say(f"fetching {url}: {error}; retry {state.attempt_number}/{policy.attempts - 1} "
            f"in {wait:.1f}s")

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(Retryable),
        stop=tenacity.stop_after_attempt(policy.attempts), wait=_wait(policy),
        before_sleep=log_retry, reraise=True)
    started = time.monotonic()
    with requests.Session() as session:
        session.headers["User-Agent"] = "ltoboot"
        try:
            digest = retrying(_get, session, url, dest, policy)
        except Retryable as e:
            raise InfraError(f"{url}: {e} after {policy.attempts} attempts; check the network "
                             "or the server") from None
    if sha256 is not None and digest != sha256.lower():
        raise UsageError(f"{url}: sha256 is {digest}, expected {sha256}; the file was not "
                         "kept (wrong URL or checksum?)")
    size = dest.stat().st_size
    (tmp / "meta.json").write_text(json.dumps({"url": url, "sha256": digest, "size": size,
                                               "retries": attempts}, indent=2))
    if size >= PROGRESS_BYTES:
        say(f"fetched {url}: {size / 2**20:.1f} MiB in {time.monotonic() - started:.1f}s")


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
    key = cache.content_key({"recipe": RECIPE, "url": url, "sha256": (sha256 or "").lower()})
    entry = cache.publish(cache.cache_root() / "downloads" / key,
                          lambda tmp: _download(tmp, url, sha256, policy))
    return entry / DATA


def fetch_optional(url: str, policy: Policy = DEFAULT) -> Path | None:
    """fetch(url), or None when there is no such file (404, 410, a missing file://)."""
    try:
        return fetch(url, policy=policy)
    except NotFound:
        return None
