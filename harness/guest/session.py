"""A running guest: QEMU under pexpect, its console log, and commands with exact output/status."""

from __future__ import annotations

import atexit
import contextlib
import re
import secrets
import shlex
import time
from pathlib import Path
from typing import Any

import pexpect

from harness.base.errors import FailureKind, InfraError, KernelFailure
from harness.base.proc import die_with_parent
from harness.guest import console
from harness.guest.console import CommandResult
from harness.guest.monitor import Monitor
from harness.guest.protocol import GuestProtocol

_LIVE: set[Guest] = set()
EXCERPT_LINES = 40


@atexit.register
def _close_all() -> None:
    for g in list(_LIVE):
        g.close()


def log_tail(log: Path, lines: int = EXCERPT_LINES) -> str:
    try:
        text = log.read_bytes().decode(errors="replace")  # no newline translation of \r\r\n
    except OSError:
        return ""
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


class Guest:
    """One QEMU process. `broken` is set by the first kernel failure; later commands refuse."""

    def __init__(self, argv: list[str], log: Path, *, label: str, accel: str,
                 timeout_scale: float, monitor: Monitor | None = None, vcpus: int = 1
                 ) -> None:
        self.argv, self.log, self.label, self.accel = argv, log, label, accel
        self.vcpus = vcpus  # what QEMU was given (-smp)
        self.monitor = monitor  # QEMU's QMP, to pause an idle guest (pause())
        self.paused = False
        self.timeout_scale = timeout_scale
        self.accel_reason = ""
        self.release = ""  # set when the shell is ready
        self.ready_timeout = 0.0  # for ready(), when nobody waited yet
        # of ready_timeout, what is the firmware's: once the kernel prints its first line, it
        # has ready_timeout - firmware_allowance from there (a hang behind UEFI firmware is
        # not given the firmware's time twice)
        self.firmware_allowance = 0.0
        self.firmware = ""  # what booted the kernel ("": QEMU loaded it itself)
        self.boot_seconds = 0.0
        self.broken: KernelFailure | None = None
        self.warnings: list[str] = []
        # guests that serve this one's checks (one that LKDTM may crash), closed with it
        self.companions: dict[str, GuestProtocol] = {}
        log.parent.mkdir(parents=True, exist_ok=True)
        self._logf = log.open("w", encoding="utf-8", errors="replace")
        self._logf.write(f"# {shlex.join(argv)}\n")
        self._logf.flush()
        self._started = time.monotonic()
        self.child: Any = pexpect.spawn(
            argv[0], argv[1:], encoding="utf-8", codec_errors="replace", echo=False,
            timeout=None, preexec_fn=die_with_parent(), dimensions=(50, 250),
        )
        self.child.logfile_read = self._logf  # nothing is read before the first expect
        # pexpect's default pauses on close add ~0.2s to every guest; QEMU needs none. Nor
        # does it need the 50 ms pexpect sleeps before every send: that was half of each
        # command's round trip (0.09 s -> 0.04 s on arm64 under TCG).
        self.child.delaybeforesend = None
        for obj in (self.child, self.child.ptyproc):
            obj.delayafterclose, obj.delayafterterminate = 0.0, 0.05
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Guest({self.label}, {self.accel}, log={self.log})"

    # -- failures ---------------------------------------------------------------------------
    def _fail(self, kind: str, summary: str) -> KernelFailure:
        self._logf.flush()
        failure = KernelFailure(kind, summary, excerpt=log_tail(self.log), log=self.log)
        self.broken = failure
        self.close()
        return failure

    def _drain(self, seconds: float = 1.0) -> None:
        """After a fatal line, keep reading briefly so the excerpt holds the whole report."""
        with contextlib.suppress(OSError, ValueError):
            self.child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=seconds)

    def _exit_summary(self) -> str:
        self.child.close()
        code = self.child.exitstatus if self.child.exitstatus is not None else \
            f"signal {self.child.signalstatus}"
        return f"QEMU exited (status {code})"

    # -- boot -------------------------------------------------------------------------------
    def console(self) -> str:
        """Everything the console printed so far (the log, flushed)."""
        self._logf.flush()
        return self.log.read_text(errors="replace")

    def ready(self) -> Guest:
        """Wait for the shell of a guest started without waiting (boot.start(wait=False))."""
        self._resume()
        if not self.release:
            self.wait_ready(self.ready_timeout, self.firmware_allowance)
        return self

    def wait_ready(self, timeout: float, firmware_allowance: float = 0.0) -> None:
        """The shell within `timeout`, of which `firmware_allowance` ends at the kernel's first
        line: from there the kernel has the rest."""
        deadline = time.monotonic() + timeout
        failures = list(console.FAILURE_RES.values())
        kinds = list(console.FAILURE_RES)
        kernel_started = [re.compile(console.KERNEL_LINE_RE)] if firmware_allowance > 0 else []
        while True:
            patterns = [re.compile(console.READY_RE), *failures, pexpect.EOF, pexpect.TIMEOUT,
                        *kernel_started]
            i = self.child.expect(patterns, timeout=max(0.0, deadline - time.monotonic()))
            if i == 0:
                self.release = self.child.match.group(1)
                self.boot_seconds = time.monotonic() - self._started
                return
            if i == len(failures) + 1:
                raise self._fail("exited", self._exit_summary() + " before the shell was ready")
            if i == len(failures) + 2:
                raise self._fail("hang", f"no shell within {timeout:.0f}s ({self.accel})")
            if i == len(failures) + 3:  # the kernel's first line: the firmware's time is over
                deadline = min(deadline, time.monotonic() + timeout - firmware_allowance)
                kernel_started = []
                continue
            kind, line = kinds[i - 1], self.child.match.group(0).strip()
            if kind == "warning":
                self.warnings.append(line)
                continue
            self._drain()
            raise self._fail(kind, line)

    # -- commands ---------------------------------------------------------------------------
    def run(self, cmd: str, timeout: float = 10.0, *, allow_kernel_errors: bool = False
            ) -> CommandResult:
        """Run `cmd` in the guest shell. Timeouts are for KVM and scaled for TCG.

        A panic, or (unless `allow_kernel_errors`) an oops, BUG or CFI failure while it runs,
        raises KernelFailure and marks the guest broken.
        """
        if self.broken is not None:
            raise KernelFailure("broken", f"guest broken earlier by {self.broken.kind}: "
                                f"{self.broken.summary}", log=self.log)
        self._resume()
        tag = secrets.token_hex(6)
        limit = timeout * self.timeout_scale
        self.child.sendline(console.command_line(cmd, tag))
        panic = console.FAILURE_RES[FailureKind.PANIC]
        raw, status = "", 0
        for marker in (console.begin_re(tag), console.end_re(tag)):
            i = self.child.expect([re.compile(marker), panic, pexpect.EOF, pexpect.TIMEOUT],
                                  timeout=limit)
            if i == 1:
                self._drain()
                raise self._fail("panic", self.child.match.group(0).strip())
            if i == 2:
                raise self._fail("exited", self._exit_summary() + f" while running {cmd!r}")
            if i == 3:
                raise self._fail("hang", f"{cmd!r} gave no answer within {limit:.0f}s")
            raw, status = self.child.before, int(self.child.match.group(1) or 0) \
                if self.child.match.groups() else 0
        result = console.parse_result(cmd, raw, status)
        fatal = [(k, line) for k, line in result.events if k in console.FATAL]
        if fatal and not allow_kernel_errors:
            raise self._fail(fatal[0][0], f"{fatal[0][1]} (while running {cmd!r})")
        return result

    # -- idle ------------------------------------------------------------------------------
    def pause(self) -> None:
        """Stop an idle guest's CPU and virtual clock (and its companions'), to be woken by
        its next use: nothing else may be waiting on it. Only a guest at its shell: a boot's
        timeout runs on the host's clock. Best effort: a guest that cannot be paused runs on."""
        for companion in self.companions.values():
            if isinstance(companion, Guest) and companion is not self:
                companion.pause()
        if self.monitor is None or self.paused or not self.release or self.broken is not None \
                or self not in _LIVE:
            return
        try:
            self.monitor.execute("stop")
        except InfraError:
            return
        self.paused = True

    def _resume(self) -> None:
        if self.paused and self.monitor is not None:
            self.paused = False
            self.monitor.execute("cont")

    def close(self) -> None:
        if self.monitor is not None:
            self.monitor.close()
        # a guest may serve its own crash checks (registry.run_checks): not closed twice
        for companion in list(self.companions.values()):
            if companion is not self:
                companion.close()
        self.companions.clear()
        if self in _LIVE:
            _LIVE.discard(self)
            try:
                if self.child.isalive():
                    self.child.close(force=True)
            finally:
                self._logf.close()
