"""`ltoboot lava submit` against a real LAVA server: Debian's lava-server 2023.01 set up on this
machine by tests/lava-server.sh (PostgreSQL, web service, scheduler, a worker with two qemu
devices). Opt-in: LTOBOOT_LAVA_SERVER=1 (the set-up installs lava-server and PostgreSQL and
starts them; a few minutes on a fresh machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.base import cache
from harness.base.errors import InfraError
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel import artifacts
from harness.runs.lava import export, job, server

SCRIPT = Path(__file__).with_name("lava-server.sh")

pytestmark = [
    pytest.mark.boot,
    pytest.mark.xdist_group("lava"),  # with tests/test_lava.py: one LAVA test at a time
    pytest.mark.opt_in("LTOBOOT_LAVA_SERVER", "sets up Debian's lava-server here "
                       "(tests/lava-server.sh) and submits to it"),
]


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[str, str]]:
    """(URL, token) of the server; started for the tests and stopped after them if it was
    not running before."""
    state = cache.cache_root() / "lava-server"
    was_up = (state / "gunicorn.pid").is_file()
    started = time.monotonic()
    r = subprocess.run([str(SCRIPT), "up"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"{r.stdout.strip()} (script: {time.monotonic() - started:.0f}s)")
    yield (state / "url").read_text().strip(), (state / "token").read_text().strip()
    if not was_up:
        subprocess.run([str(SCRIPT), "down"], check=False)


def ltoboot(*args: str, token: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LTOBOOT_CACHE": str(cache.cache_root()), "LAVA_TOKEN": token}
    return subprocess.run([sys.executable, "-m", "harness.faces.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_submit_gives_the_report_junit_and_status(lab: tuple[str, str], kernels: Kernels,
                                                  tmp_path: Path) -> None:
    url, token = lab
    for arch in ("x86_64", "arm64"):
        kernels.get(arch=arch)  # built by the session; the command finds them cached
    xml, doc = tmp_path / "lava.xml", tmp_path / "kcidb.json"
    started = time.monotonic()
    r = ltoboot("lava", "submit", "--server", url, "--junit", str(xml), "--kcidb", str(doc),
                token=token)
    print(f"lava submit, both arches: {time.monotonic() - started:.0f}s")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "PASSED: 15/17 checks, 2 skipped" in r.stdout  # x86_64
    assert "PASSED: 16/17 checks, 1 skipped" in r.stdout  # arm64
    assert "LAVA job" in r.stderr and "submitted: " + url in r.stderr
    names = [c.get("name") for c in ET.parse(xml).getroot().findall("testsuite/testcase")]
    assert names.count("cfi") == 2 and len(names) == 34
    tests = json.loads(doc.read_text())["tests"]  # KernelCI's schema accepted it
    assert len(tests) == 36 and {t["status"] for t in tests} == {"PASS", "SKIP"}


def test_jobs_fetch_their_files_over_http(lab: tuple[str, str], kernels: Kernels,
                                          primary_arch: str, tmp_path: Path) -> None:
    url, token = lab
    kernel = kernels.get(arch=primary_arch)
    web = artifacts.Server(tmp_path)
    try:
        jobs = export.export([kernel], tmp_path / "jobs", names=["proc_version", "cfi"],
                             artifact_url=web.url(tmp_path) + "jobs/")
        definition = jobs[0].definition()
        assert definition["actions"][0]["deploy"]["images"]["kernel"]["url"].startswith(
            "http://127.0.0.1:")
        logs = server.run(jobs, server.Server.connect(url, token), wait_minutes=20)
    finally:
        web.close()
    from harness.runs.lava import verdicts
    rep = verdicts.kernel_report(kernel, jobs, logs, ["proc_version", "cfi"])
    assert rep.passed, rep.results


def test_lab_failures_are_one_line_and_no_verdict(lab: tuple[str, str], kernels: Kernels,
                                                  primary_arch: str, tmp_path: Path) -> None:
    url, token = lab
    kernels.get(arch=primary_arch)
    # a wrong token
    r = ltoboot("lava", "submit", "--server", url, "--arch", primary_arch, token="nope")
    assert r.returncode == 2 and "refused our token" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    # files the lab cannot fetch (404; an address where nothing listens keeps LAVA's own
    # validation waiting until the job's timeout): Incomplete, and not the kernel's fault
    web = artifacts.Server(tmp_path)
    try:
        r = ltoboot("lava", "submit", "--server", url, "--arch", primary_arch, "--check",
                    "proc_version", "--artifact-url", web.url(tmp_path) + "elsewhere/",
                    "--out", str(tmp_path / "out"), "--kcidb", str(tmp_path / "k.json"),
                    token=token)
    finally:
        web.close()
    assert r.returncode == 2, r.stdout + r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ltoboot: error: LAVA job ") and "did not reach our shell" in last
    statuses = [(t["path"], t["status"]) for t in
                json.loads((tmp_path / "k.json").read_text())["tests"]]
    assert statuses == [("boot", "ERROR"), ("ltoboot.proc_version", "MISS")]  # never FAIL
    # a job the server refuses
    bad = tmp_path / "bad.yaml"
    bad.write_text("job_name: no actions\n")
    refused = job.Job(kernels.get(arch=primary_arch), "", bad, (), "")
    with pytest.raises(InfraError, match=r"refused job .*required key not provided"):
        server.Server.connect(url, token).submit(refused)
