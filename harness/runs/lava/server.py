"""`ltoboot lava submit`: the jobs sent to a LAVA server over its REST API (v0.2), waited
for with bounded polling, their logs fetched back for our own verdicts.

Everything that goes wrong on the server's side is one line and no kernel verdict
(InfraError, exit 2): an unreachable server, a refused token or job, a job that LAVA
canceled, or that ended Incomplete without the kernel's own console saying why.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
import yaml

from harness.base import redaction, retry
from harness.base.errors import InfraError, UsageError
from harness.base.progress import say
from harness.runs.lava import log as lavalog
from harness.runs.lava.job import Job

API = "api/v0.2"
LAVACLI_CONFIG = Path("~/.config/lavacli.yaml")
POLL_SECONDS = 5.0
HTTP_TIMEOUT = 30.0
FINISHED = "Finished"
RETRY = retry.Policy(attempts=5, backoff=1.0, backoff_max=20.0)


def base_url(server: str) -> str:
    """--server, checked: an http(s) URL without credentials (the token authenticates; a
    password in the URL would be printed with every job URL and sent as Basic auth)."""
    try:
        parts = urlsplit(server.strip())
        parts.port  # noqa: B018 -- parses the port: 'http://[::1/' or ':x' raise here
    except ValueError as e:
        raise UsageError(f"--server: not a URL ({e}); give the LAVA server's URL, e.g. "
                         "https://lava.example.org/") from None
    if parts.username is not None or parts.password is not None:
        raise UsageError("--server: the URL carries user:password@ (not shown); give it "
                         "without: ltoboot authenticates with a token (LAVA_TOKEN or "
                         "--identity)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--server {server}: not an http(s) URL of a LAVA server, e.g. "
                         "https://lava.example.org/")
    if parts.query or parts.fragment:
        raise UsageError(f"--server {server}: a server URL has no ?query or #fragment; give "
                         "its base, e.g. https://lava.example.org/")
    path = parts.path.rstrip("/")
    for tail in ("/RPC2", f"/{API}"):  # lavacli's identities name the XML-RPC endpoint
        path = path.removesuffix(tail)
    return f"{parts.scheme}://{parts.netloc}{path}/"


def _checked_token(value: str, where: str) -> str | None:
    """A token as HTTP can carry it: surrounding white space (a newline from `cat`) removed;
    anything else that is not printable ASCII refused, without showing it."""
    value = value.strip()
    if not value:
        return None
    redaction.hold(value)
    if not all(c.isascii() and c.isprintable() and not c.isspace() for c in value):
        raise UsageError(f"the LAVA token in {where} has white space or control characters "
                         "inside it (not shown): set it to the token alone")
    return value


def token(identity: str, config: Path = LAVACLI_CONFIG) -> str | None:
    """$LAVA_TOKEN, else the token of lavacli's identity `identity` (~/.config/lavacli.yaml)."""
    if os.environ.get("LAVA_TOKEN", "").strip():
        return _checked_token(os.environ["LAVA_TOKEN"], "LAVA_TOKEN")
    path = config.expanduser()
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise UsageError(f"{path}: not a lavacli configuration ({e}); fix or remove it") \
            from None
    entry = data.get(identity) if isinstance(data, dict) else None
    value = entry.get("token") if isinstance(entry, dict) else None
    return _checked_token(str(value), f"{path} ({identity})") if value else None


class _TokenAuth(requests.auth.AuthBase):
    """LAVA's `Authorization: Token ...`, as requests' auth: so no ~/.netrc replaces it."""

    def __init__(self, value: str) -> None:
        self.value = value

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Token {self.value}"
        return r


@dataclass
class Server:
    url: str  # base URL, ending in /
    token: str | None
    session: requests.Session

    @classmethod
    def connect(cls, server: str, token_value: str | None) -> Server:
        s = requests.Session()
        if token_value:
            s.auth = _TokenAuth(token_value)
        return cls(base_url(server), token_value, s)

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            r = self.session.request(method, self.url + path, timeout=HTTP_TIMEOUT, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise retry.Transient(f"{type(e).__name__}: {e}") from e
        if r.status_code >= 500:
            raise retry.Transient(f"HTTP {r.status_code}")
        return r

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            r = retry.retrying(RETRY)(self._request, method, path, **kwargs)
        except retry.Transient as e:
            raise InfraError(f"LAVA server {self.url} is unreachable ({e}, {RETRY.attempts} "
                             "tries); check --server and that the server is up") from None
        if r.status_code in (401, 403):
            raise InfraError(f"LAVA server {self.url} refused our token ({_detail(r)}): set "
                             "LAVA_TOKEN or a lavacli identity with a valid token")
        return r

    def version(self) -> str:
        """LAVA's version, from its JSON answer: anything else (a login page, a proxy's
        error, other JSON) is not a LAVA server."""
        r = self.request("GET", f"{API}/system/version/")
        version = _json(r).get("version") if r.status_code == 200 else None
        if not isinstance(version, str) or not version.strip():
            got = f"HTTP {r.status_code}, {r.headers.get('Content-Type', 'no content type')}"
            raise InfraError(f"{self.url} is not a LAVA server (GET {API}/system/version/ "
                             f"gave {got}, not LAVA's version): check --server")
        return version.strip()

    def submit(self, job: Job) -> int:
        r = self.request("POST", f"{API}/jobs/", json={"definition": job.path.read_text()})
        ids = _json(r).get("job_ids") if r.status_code == 201 else None
        if not ids:
            raise InfraError(f"LAVA server {self.url} refused job {job.label} "
                             f"(HTTP {r.status_code}: {_detail(r)})")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                                and i > 0 for i in ids):
            raise InfraError(f"LAVA server {self.url} answered job {job.label} with job ids "
                             f"{str(ids)[:60]!r}, not LAVA's list of numbers: check --server")
        return int(ids[0])

    def job(self, job_id: int) -> dict[str, Any]:
        r = self.request("GET", f"{API}/jobs/{job_id}/")
        if r.status_code != 200:
            raise InfraError(f"LAVA job {job_id}: HTTP {r.status_code} from {self.url}")
        return _json(r)

    def log(self, job_id: int) -> str:
        r = self.request("GET", f"{API}/jobs/{job_id}/logs/")
        if r.status_code == 404:  # a job that never started has no log
            return ""
        if r.status_code != 200:
            raise InfraError(f"LAVA job {job_id}: no log (HTTP {r.status_code})")
        return r.text

    def cancel(self, job_id: int) -> None:
        with contextlib.suppress(requests.RequestException):
            self.session.get(f"{self.url}{API}/jobs/{job_id}/cancel/", timeout=HTTP_TIMEOUT)

    def job_url(self, job_id: int) -> str:
        return f"{self.url}scheduler/job/{job_id}"


def _json(r: requests.Response) -> dict[str, Any]:
    try:
        value = r.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _detail(r: requests.Response) -> str:
    d = _json(r)
    text = str(d.get("message") or d.get("detail") or r.text[:200] or r.reason)
    return " ".join(text.split())


def wait(server: Server, ids: dict[Job, int], limit: float) -> dict[Job, dict[str, Any]]:
    """Poll until every job is finished, at most `limit` seconds; the jobs' last states."""
    deadline = time.monotonic() + limit
    states: dict[Job, dict[str, Any]] = {}
    shown: dict[Job, str] = {}
    while True:
        for j, job_id in ids.items():
            if states.get(j, {}).get("state") != FINISHED:
                states[j] = server.job(job_id)
                now = f"{states[j].get('state')}/{states[j].get('health')}"
                if shown.get(j) != now:
                    say(f"LAVA job {job_id} ({j.label}): {now}")
                    shown[j] = now
        if all(s.get("state") == FINISHED for s in states.values()):
            return states
        if time.monotonic() > deadline:
            late = [f"{ids[j]} ({s.get('state')})" for j, s in states.items()
                    if s.get("state") != FINISHED]
            raise InfraError(f"LAVA jobs not finished within {limit / 60:.0f} min: "
                             f"{', '.join(late)} on {server.url} (--wait MINUTES)")
        time.sleep(POLL_SECONDS)


def run(jobs: Sequence[Job], server: Server, wait_minutes: float) -> dict[Job, Path]:
    """Submit, wait, fetch: the jobs' logs, kept like lava-run's. A job canceled on the server
    is no verdict; an Incomplete one is judged from its log (verdicts.py decides whose fault)."""
    ids: dict[Job, int] = {}
    try:
        for j in jobs:
            ids[j] = server.submit(j)
            say(f"LAVA job {ids[j]} ({j.label}) submitted: {server.job_url(ids[j])}")
        states = wait(server, ids, wait_minutes * 60)
    except BaseException:
        for job_id in ids.values():  # nothing of ours keeps a lab's device busy
            server.cancel(job_id)
        raise
    logs = {}
    for j, job_id in ids.items():
        if states[j].get("health") == "Canceled":
            raise InfraError(f"LAVA job {job_id} ({j.label}) was canceled on the server: "
                             f"{server.job_url(job_id)}")
        path = lavalog.path_for(j)
        path.write_text(server.log(job_id))
        logs[j] = path
        say(f"LAVA job {job_id} ({j.label}): {states[j].get('health')}; log: {path}")
    return logs
