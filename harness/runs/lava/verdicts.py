"""From LAVA job logs to our report: the checks themselves, run on replays of the jobs.

How a job ended decides what can be said. A job that finished: every check is judged by its
own function from the framed answers. A job that did not finish (LAVA: Incomplete) with a
kernel failure on its console (panic, oops, BUG, CFI failure) is the kernel's: the boot or
the check it stopped in fails, with that line. Any other unfinished job is LAVA's or the
lab's problem: one line, no verdict on the kernel (InfraError).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.base.arch import get_arch
from harness.base.errors import InfraError, UsageError
from harness.checks import registry
from harness.guest import console
from harness.kernel import image
from harness.kernel.model import Kernel
from harness.reports.results import KernelReport, Stage
from harness.runs.lava import log as lavalog
from harness.runs.lava import plan
from harness.runs.lava.job import Job
from harness.runs.lava.replay import ReplayGuest
from harness.runs.lava.replay import answers as replay_answers


def _fatal(text: str) -> tuple[str, str] | None:
    return next(((k, line) for k, line in console.classify(text) if k in console.FATAL), None)


def replay(job: Job, log: lavalog.JobLog, path: Path) -> ReplayGuest:
    """The job's guest as the checks see it; InfraError when LAVA failed the job for a
    reason that is not the kernel's."""
    text = log.console
    if not log.finished and _fatal(text) is None:
        raise InfraError(f"LAVA job {job.label} did not finish: {log.error}; log: {path}")
    return ReplayGuest(text, job.plans, log=path, label=job.label, accel="tcg",
                       firmware=job.firmware, complete=log.finished, vcpus=job.vcpus)


def exported_identity(kernel: Kernel) -> tuple[str, str] | None:
    """(release, UTS_VERSION) of the exported image, None when the image does not say."""
    try:
        data = image.unwrap(kernel.image.read_bytes())
    except (OSError, UsageError):
        return None
    found = image.banner(data, get_arch(kernel.arch))
    return image.build_identity(found) if found else None


def booted_is_exported(kernel: Kernel, job: Job, text: str, log: Path) -> None:
    """The main job printed the booted kernel's /proc/version first: a kernel other than the
    exported one (a lab's URL served another's files) is an infrastructure error naming both,
    never a verdict on this kernel."""
    found = replay_answers(text, [plan.identity_command(kernel.key)])
    result = found[0].result if found else None
    if result is None or not result.ok:
        raise InfraError(f"LAVA job {job.label} did not say which kernel it booted (no "
                         f"/proc/version from its first step): export it again; log: {log}")
    booted = result.output.strip()
    want = exported_identity(kernel)
    got = image.build_identity(booted)
    if want is None:
        if got is None or got[0] != kernel.release:
            raise InfraError(f"LAVA job {job.label} booted {booted!r}, not the exported "
                             f"{kernel.release}; log: {log}")
        return
    if got != want:
        raise InfraError(f"LAVA job {job.label} booted another kernel than the one exported: "
                         f"{booted!r}, not {want[0]} {want[1]!r} (the lab's URL served other "
                         f"files: publish --out there again); log: {log}")


def kernel_report(kernel: Kernel, jobs: Sequence[Job], logs: Mapping[Job, Path],
                  names: Sequence[str]) -> KernelReport:
    """The report of one kernel from its jobs' logs, as `ltoboot run` would print it."""
    rep = KernelReport(label=kernel.label, kernel=kernel, accel="tcg",
                       accel_reason="LAVA's qemu device (no_kvm: TCG)")
    parsed = {j: lavalog.parse(logs[j].read_text(errors="replace")) for j in jobs}
    main = next((j for j in jobs if not j.name), None)
    if main is None:
        raise InfraError(f"no main LAVA job for {kernel.label}")
    mlog = parsed[main]
    rep.console_log = str(logs[main])
    text = mlog.console
    if re.search(console.READY_RE, text) is None:
        fatal = _fatal(text)
        if fatal is None:
            raise InfraError(f"LAVA job {main.label} did not reach our shell: {mlog.error}; "
                             f"log: {logs[main]}")
        rep.fail(Stage.BOOT, f"{fatal[0]}: {console.without_time(fatal[1])} "
                 f"(LAVA log: {logs[main]})")
        return rep
    rep.boot_seconds = mlog.seconds_to("LTOBOOT-READY")
    booted_is_exported(kernel, main, text, logs[main])
    guest = replay(main, mlog, logs[main])
    crash = {j.name: j for j in jobs if j.name}
    for name in names:
        if name in crash:
            guest.companions[registry.CHECKS[name].companion] = replay(
                crash[name], parsed[crash[name]], logs[crash[name]])
        rep.results.append(registry.run_check(name, guest, kernel))
    return rep
