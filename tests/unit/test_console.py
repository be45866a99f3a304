"""The console protocol on recorded boots: markers never match what we type, command output is kept
apart from printk lines, kernel failures are classified, and a guest reports exit and hang."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from harness.base.errors import KernelFailure
from harness.guest import console
from harness.guest.session import Guest


def test_typed_line_never_matches_its_own_markers() -> None:
    line = console.command_line("cat /proc/version", "abc123")
    assert not re.search(console.begin_re("abc123"), line + "\r\n")
    assert not re.search(console.end_re("abc123"), line + "\r\n")
    assert re.search(console.end_re("abc123"), "END-abc123 0\r\r\n")


def test_tagged_output_is_separated_from_printk_lines() -> None:
    raw = ("|Linux version 6.1.192\r\r\n"
           "[   12.5] BUG: kernel NULL pointer dereference, address: 0000000000000000\r\r\n"
           "|second line\r\r\n\r\r\n")
    r = console.parse_result("x", raw, 3)
    assert r.output == "Linux version 6.1.192\nsecond line"
    assert r.status == 3 and not r.ok
    assert r.kernel_lines == ["[   12.5] BUG: kernel NULL pointer dereference, address: "
                              "0000000000000000"]
    assert [k for k, _ in r.events] == ["bug"]


def test_failure_lines_inside_command_output_are_not_kernel_failures() -> None:
    # dmesg printed by a command is tagged, so a WARNING in it is evidence, not a console event
    raw = "|[    1.0] WARNING: CPU: 0 PID: 1 at kernel/foo.c:1 foo+0x1/0x2\r\n"
    assert console.parse_result("dmesg", raw, 0).events == []


def test_recorded_panic_is_classified_as_panic(recorded: Path) -> None:
    text = (recorded / "x86_64-panic-no-init.log").read_bytes().decode()
    events = console.classify(text)
    assert events[0][0] == "panic"
    assert "Requested init /nonexistent failed" in events[0][1]


def test_recorded_good_boot_has_no_failures(recorded: Path) -> None:
    text = (recorded / "x86_64-thin-boot.log").read_bytes().decode()
    assert console.classify(text) == []
    assert re.search(console.READY_RE, text)


def _replay(log: Path, tmp_path: Path) -> Guest:
    return Guest(["cat", str(log)], tmp_path / "replay.log", label="replay", accel="tcg",
                 timeout_scale=1.0)


def test_guest_finds_ready_marker_in_recorded_boot(recorded: Path, tmp_path: Path) -> None:
    g = _replay(recorded / "x86_64-thin-boot.log", tmp_path)
    try:
        g.wait_ready(5)
        assert g.release == "6.1.192"
    finally:
        g.close()


def test_guest_raises_panic_from_recorded_console(recorded: Path, tmp_path: Path) -> None:
    g = _replay(recorded / "x86_64-panic-no-init.log", tmp_path)
    with pytest.raises(KernelFailure) as e:
        g.wait_ready(5)
    assert e.value.kind == "panic"
    assert "Requested init /nonexistent failed" in e.value.summary
    assert "Call Trace" in e.value.excerpt and e.value.log == tmp_path / "replay.log"
    assert g.broken is e.value


def test_guest_reports_exit_and_hang(tmp_path: Path) -> None:
    g = Guest(["true"], tmp_path / "a.log", label="t", accel="tcg", timeout_scale=1.0)
    with pytest.raises(KernelFailure) as e:
        g.wait_ready(5)
    assert e.value.kind == "exited" and "status 0" in e.value.summary
    g = Guest(["sleep", "30"], tmp_path / "b.log", label="t", accel="tcg", timeout_scale=1.0)
    with pytest.raises(KernelFailure) as e:
        g.wait_ready(0.3)
    assert e.value.kind == "hang"
    assert not g.child.isalive()


def test_firmware_time_ends_at_the_kernels_first_line(tmp_path: Path) -> None:
    """A kernel that hangs after its first line is given the kernel's part of the timeout from
    that line, not the firmware's allowance again; silent firmware has the whole timeout."""
    def hang(script: str, name: str) -> float:
        g = Guest(["sh", "-c", script], tmp_path / name, label="t", accel="tcg",
                  timeout_scale=1.0)
        started = time.monotonic()
        with pytest.raises(KernelFailure) as e:
            g.wait_ready(4.0, firmware_allowance=3.0)
        assert e.value.kind == "hang"
        return time.monotonic() - started
    kernel = hang("sleep 0.2; echo '[    0.000000] Booting Linux'; exec sleep 30", "k.log")
    assert 1.1 < kernel < 2.5, kernel  # 0.2 s of firmware, then the kernel's 1 s
    firmware = hang("exec sleep 30", "f.log")
    assert 3.9 < firmware < 5.5, firmware


def test_a_kernel_line_right_after_a_marker_does_not_hide_it() -> None:
    """Recorded on arm64 with 2 vCPUs: LKDTM's CFI oops killed the command, and while the shell
    printed its end marker, the other CPU's WARNING went to the console (after an oops every
    level does) before the marker's line end."""
    text = ("END-727d4c94a084 139[    5.265888]  cpu_startup_entry+0x38/0x40\r\n\r\n"
            "[    5.266420]  secondary_start_kernel+0x134/0x138\r\n")
    m = re.search(console.end_re("727d4c94a084"), text)
    assert m and m.group(1) == "139"
    assert re.search(console.begin_re("abc"), "BEGIN-abc[    1.000001] smp: x\r\n")
    # a status cut by anything else is not taken for a shorter one
    assert not re.search(console.end_re("abc"), "END-abc 13x9\r\n")


def test_a_guest_serving_its_own_crash_checks_closes_once(tmp_path: Path) -> None:
    g = Guest(["sleep", "30"], tmp_path / "c.log", label="t", accel="tcg", timeout_scale=1.0)
    g.companions["crash"] = g  # as registry.run_checks does for a run's last checks
    with pytest.raises(KernelFailure) as e:
        g.wait_ready(0.3)
    assert e.value.kind == "hang" and not g.child.isalive()
