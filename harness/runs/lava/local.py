"""`ltoboot lava run`: exported jobs run on this machine by LAVA's own dispatcher, lava-run.

lava-run needs a device file: rendered here from LAVA's qemu.jinja2 (it ships in lava-server;
when that is not installed, the templates are taken from Debian's lava-server package into
the cache) with the job's context, as a server would render it. Each job gets its own job id
(lava-run's work directory is named after it) and output directory; several run at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness.base import cache, proc
from harness.base.errors import InfraError, UsageError
from harness.base.progress import say
from harness.kernel import toolchain
from harness.runs.lava import log as lavalog
from harness.runs.lava.export import SYSTEM_PYTHON
from harness.runs.lava.job import Job

TEMPLATE_DIRS = (Path("/etc/lava-server/dispatcher-config/device-types"),
                 Path("/usr/share/lava-server/device-types"))
TEMPLATES_PACKAGE = "lava-server"
_RENDER = """
import json, sys, jinja2
env = jinja2.Environment(loader=jinja2.FileSystemLoader([sys.argv[1]]), autoescape=False,
                         trim_blocks=True)
print(env.from_string("{% extends 'qemu.jinja2' %}\\n").render(**json.loads(sys.argv[2])))
"""
DISPATCHER = "dispatcher_ip: 127.0.0.1\n"  # no default route needed
MARGIN = 120.0  # seconds past the job's own timeout before we end lava-run


def _fetch_templates(tmp: Path) -> None:
    with tempfile.TemporaryDirectory(dir=cache.scratch_root()) as work:
        proc.run(["apt-get", "download", TEMPLATES_PACKAGE], cwd=Path(work),
                 what=f"downloading Debian's {TEMPLATES_PACKAGE} for LAVA's device templates")
        deb = next(Path(work).glob(f"{TEMPLATES_PACKAGE}_*.deb"))
        proc.run(["dpkg-deb", "-x", str(deb), f"{work}/x"], what=f"unpacking {deb.name}")
        shutil.copytree(Path(work, "x/usr/share/lava-server/device-types"), tmp)


def templates() -> Path:
    """LAVA's device-type templates: lava-server's, else a copy from its Debian package."""
    for d in TEMPLATE_DIRS:
        if (d / "qemu.jinja2").is_file():
            return d
    return cache.publish(cache.cache_root() / "tools" / "lava-device-types", _fetch_templates)


def render_device(context: dict[str, object], template_dir: Path) -> str:
    r = subprocess.run([SYSTEM_PYTHON, "-c", _RENDER, str(template_dir), json.dumps(context)],
                       capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise InfraError(f"cannot render LAVA's qemu device from {template_dir}: {why} "
                         "(apt-get install lava-dispatcher)")
    return r.stdout


def require() -> None:
    if os.geteuid() != 0:
        raise UsageError("lava-run must run as root: run `ltoboot lava run` as root (sudo)")
    toolchain.require([("lava-run", "lava-dispatcher")])


def _end_leftovers(job_id: str) -> None:
    """End what lava-run started for job `job_id` and left behind: QEMU runs in a session of
    its own (pexpect's pty), out of the reach of our process group; its command line names
    the job's work directory."""
    mark = f"/dispatcher/tmp/{job_id}/".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if mark in cmdline.read_bytes():
                os.kill(int(cmdline.parent.name), signal.SIGKILL)
        except (OSError, ValueError):
            continue


def run_one(job: Job, job_id: str, template_dir: Path, stop: threading.Event) -> Path:
    """Run one job with lava-run; its log (lava-run's output) is kept, its path returned.
    When `stop` is set (the harness is interrupted), lava-run is ended (SIGTERM: it cancels
    the job and ends its QEMU; SIGKILL after a grace period) and what it left is ended."""
    definition = job.definition()
    log = lavalog.path_for(job)
    limit = definition["timeouts"]["job"]["minutes"] * 60 + MARGIN
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(),
                                     prefix=f"lava-{os.getpid()}-") as work:
        device, dispatcher = Path(work, "device.yaml"), Path(work, "dispatcher.yaml")
        device.write_text(render_device(definition["context"], template_dir))
        dispatcher.write_text(DISPATCHER)
        argv = ["lava-run", "--job-id", job_id, "--output-dir", f"{work}/out",
                "--device", str(device), "--dispatcher", str(dispatcher), str(job.path)]
        say(f"LAVA job {job.label} (lava-run, job id {job_id}); log: {log}")
        deadline = time.monotonic() + limit
        try:
            with log.open("w") as f, proc.running(argv, stdout=f,
                                                  stderr=subprocess.STDOUT) as p:
                while p.poll() is None:
                    if stop.is_set():
                        raise InfraError(f"lava-run of {job.label} ended: interrupted")
                    if time.monotonic() > deadline:
                        raise InfraError(f"lava-run of {job.label} did not end within "
                                         f"{limit:.0f}s; log: {log}")
                    time.sleep(0.2)
        finally:
            _end_leftovers(job_id)
    return log


def run(jobs: Sequence[Job], parallel: int = 2) -> dict[Job, Path]:
    """Run every job, `parallel` at a time; their logs by job. Interrupted, no further job
    starts and the running ones are ended before this returns."""
    require()
    template_dir = templates()
    base = f"{os.getpid()}{int(time.time()) % 100000:05d}"
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, parallel))
    try:
        futures = {j: pool.submit(run_one, j, f"{base}{i:03d}", template_dir, stop)
                   for i, j in enumerate(jobs)}
        return {j: f.result() for j, f in futures.items()}
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
