"""The two error families: the user's or the machine's fault, and the kernel's fault.

UsageError / InfraError: nothing is wrong with the kernel; the message names the fix
(pytest reports them as errors, `ltoboot` exits 2, bisect answers "skip").
BuildError: the kernel did not build (bisect answers "skip").
KernelFailure: the kernel misbehaved (panic, oops, hang, failed check): a test failure with a
console excerpt and the log path.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path


class LtobootError(Exception):
    """Base of every error ltoboot raises on purpose."""


class UsageError(LtobootError):
    """Bad input from the user: option, path, URL."""


class NotFound(UsageError):
    """A file or URL that is not there (a 404 is not retried)."""


class InfraError(LtobootError):
    """The machine is missing something or failed (tool, package, disk, network)."""


class NotApplicable(LtobootError):
    """A check cannot run on this kernel (e.g. it needs a build directory a prebuilt kernel
    lacks): reported as skipped, with the reason."""


class BuildError(LtobootError):
    """The kernel did not build; carries the tail of the build log and its path."""

    def __init__(self, message: str, log: Path | None = None, tail: str = "") -> None:
        self.message = message
        self.log = log
        self.tail = tail
        text = message
        if tail:
            text += "\n--- last lines of the build log ---\n" + tail
        if log is not None:
            text += f"\nbuild log: {log}"
        super().__init__(text)


class FailureKind(StrEnum):
    """What the guest kernel did: the console's failure lines, and what the harness saw."""

    PANIC = "panic"
    OOPS = "oops"
    BUG = "bug"
    CFI = "cfi"
    WARNING = "warning"
    HANG = "hang"  # no answer in time
    EXITED = "exited"  # QEMU ended, or a LAVA job stopped before the command
    BROKEN = "broken"  # a command on a guest an earlier failure broke


class KernelFailure(LtobootError):
    """The guest kernel failed, as `kind` says (a FailureKind, or its name)."""

    def __init__(self, kind: FailureKind | str, summary: str, excerpt: str = "",
                 log: Path | None = None) -> None:
        self.kind = FailureKind(kind)
        self.summary = summary
        self.excerpt = excerpt
        self.log = log
        text = f"{kind}: {summary}"
        if excerpt:
            text += "\n--- console ---\n" + excerpt.rstrip()
        if log is not None:
            text += f"\nconsole log: {log}"
        super().__init__(text)
