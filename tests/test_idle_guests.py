"""An idle guest of the suite stops while its worker builds (an idle TCG guest takes 2-9 % of a
core for its timer ticks): QMP stops its CPU and virtual clock, its next use starts them, and
the guest never notices."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel import kbuild

pytestmark = [pytest.mark.boot, pytest.mark.ltoboot_group()]


PAUSE = 5.0  # seconds the guest stays paused


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_a_build_pauses_the_workers_idle_guests_and_their_next_use_wakes_them(
        kernels: Kernels, guests: Guests, primary_arch: str) -> None:
    kernel = kernels.get(arch=primary_arch)
    guest = guests.boot(kernel, label="idle-test")
    seen = len(guest.run("dmesg").output.splitlines())
    started = time.monotonic()
    before = float(guest.run("cut -d' ' -f1 /proc/uptime").output)
    for step_aside in kbuild.BEFORE_BUILD:  # what every build does first, as the plugin set it
        step_aside()
    assert guest.paused
    cpu = _cpu_seconds(guest.child.pid)
    time.sleep(PAUSE)
    assert _cpu_seconds(guest.child.pid) - cpu < 0.1  # running idle: 0.1-0.3 s in 3 s
    after = float(guest.run("cut -d' ' -f1 /proc/uptime").output)  # woken by its use
    host = time.monotonic() - started
    assert not guest.paused
    # the guest's clock stood still through the pause: it counted at most the host's time
    # around it (the two commands: seconds, on a loaded machine), not the pause itself
    assert after - before < max(1.5, host - PAUSE + 0.5), (before, after, host)
    since = guest.run("dmesg").output.splitlines()[seen:]
    assert not [line for line in since if any(
        w in line.lower() for w in ("stall", "unstable", "watchdog", "hung"))], since
