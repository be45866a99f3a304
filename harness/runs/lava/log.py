"""A LAVA job log, read: the console (target lines), the results, how the job ended.

lava-run prints the log as one mapping per line ({"dt", "lvl", "msg"}), and a server's
/api/v0.2/jobs/<id>/logs/ gives the same lines as a YAML list ("- {...}"). The lines are
JSON but for LAVA's YAML non-specific tags (`"size": ! "1823744"`), so each is read as JSON
and, failing that, as YAML.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from harness.base import cache

if TYPE_CHECKING:
    from harness.runs.lava.job import Job

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # PyYAML without libyaml
    _Loader = yaml.SafeLoader


@dataclass
class JobLog:
    lines: list[tuple[str, str]] = field(default_factory=list)  # (dt, target line)
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # lvl: error lines

    @property
    def console(self) -> str:
        return "".join(line + "\n" for _, line in self.lines)

    def result(self, case: str, definition: str = "lava") -> dict[str, Any] | None:
        return next((r for r in self.results if r.get("case") == case
                     and r.get("definition") == definition), None)

    @property
    def finished(self) -> bool:
        """The job itself passed (LAVA's verdict on the run, not on the kernel)."""
        job = self.result("job")
        return job is not None and job.get("result") == "pass"

    @property
    def error(self) -> str:
        """Why the job did not finish, in one line (LAVA's error_msg, else its last error)."""
        job = self.result("job") or {}
        extra = job.get("extra")
        msg = job.get("error_msg") or (extra.get("error_msg") if isinstance(extra, dict)
                                       else None) or (
            self.errors[-1] if self.errors else "the log has no result for the job")
        lines = [line.strip() for line in str(msg).replace("\r", "").splitlines()
                 if line.strip()]
        return lines[0] if lines else "no error message"

    def seconds_to(self, text: str, since_case: str = "execute-qemu") -> float | None:
        """From the result `since_case` to the first target line holding `text`."""
        start = next((r.get("_dt") for r in self.results if r.get("case") == since_case), None)
        at = next((dt for dt, line in self.lines if text in line), None)
        if start is None or at is None:
            return None
        return (datetime.fromisoformat(at) - datetime.fromisoformat(start)).total_seconds()


def _entry(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if line.startswith("- "):
        line = line[2:]
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        try:
            value = yaml.load(line, Loader=_Loader)  # a safe loader
        except yaml.YAMLError:
            return None
    return value if isinstance(value, dict) else None


def parse(text: str) -> JobLog:
    log = JobLog()
    for raw in text.splitlines():
        entry = _entry(raw)
        if entry is None:
            continue
        lvl, msg, dt = entry.get("lvl"), entry.get("msg"), str(entry.get("dt", ""))
        if lvl == "target" and isinstance(msg, str):
            log.lines.append((dt, msg))
        elif lvl == "results" and isinstance(msg, dict):
            log.results.append({**msg, "_dt": dt})
        elif lvl == "error":
            log.errors.append(str(msg))
    return log


def path_for(job: Job) -> Path:
    """Where a job's log is kept (lava-run's output, or what a server gave back)."""
    d = cache.cache_root() / "logs" / "lava"
    d.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}"
    return d / f"{job.label}-{stamp}.log"
