"""What a check may use of a guest: the contract, written once.

Three classes keep it: the live QEMU guest (harness/guest/session.py), the recorder that
lists what a check types for a LAVA job (harness/runs/lava/plan.py), and the replay of a LAVA
job's console (harness/runs/lava/replay.py). mypy (strict) proves each keeps it wherever one is
handed to a check, as labgrid's console protocol does for its drivers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from harness.base.errors import KernelFailure
from harness.guest.console import CommandResult


class GuestProtocol(Protocol):
    label: str  # what the reports and companion guests are named after
    log: Path  # its console log
    accel: str  # "kvm" or "tcg": what the timeouts and some verdicts depend on
    firmware: str  # what booted the kernel ("": QEMU loaded it itself)
    vcpus: int  # the vCPUs it was given (QEMU's -smp)
    broken: KernelFailure | None  # the first kernel failure; later commands refuse
    # guests that serve this one's checks (one a crash check may break), by kind
    companions: dict[str, GuestProtocol]

    def run(self, cmd: str, timeout: float = 10.0, *, allow_kernel_errors: bool = False
            ) -> CommandResult:
        """`cmd`'s exact output and status; a kernel failure meanwhile raises KernelFailure."""
        ...

    def console(self) -> str:
        """Everything the console printed so far."""
        ...

    def ready(self) -> GuestProtocol:
        """The guest, its shell ready (a guest started without waiting is waited for)."""
        ...

    def close(self) -> None:
        ...
