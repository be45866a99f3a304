"""What each check types into the guest, known before any guest runs, and its framing.

A LAVA test shell cannot ask us what to type next, so the commands of every check are
collected first: the check itself runs once against a Recorder, a guest that writes down each
command and answers "done, nothing printed". That follows the path of a kernel that answers
as expected. A check whose later commands depend on what the guest printed (llvm_symbols: how
many names, which one a kprobe finds) registers a plan of its own, built from the same command
helpers it uses. The commands are then framed like our own console commands (markers, tagged
output, exit status), so that afterwards the same check function, against a replay of the
job's log, gets exactly what it would have got from our own guest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.base.errors import KernelFailure
from harness.checks import registry
from harness.guest import qemu
from harness.guest.console import CommandResult, command_line
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel


class Recorder:
    """A guest that runs nothing: it records what a check asks for."""

    def __init__(self, *, accel: str, firmware: str, label: str = "recorder",
                 vcpus: int = qemu.VCPUS) -> None:
        self.accel, self.firmware, self.label, self.vcpus = accel, firmware, label, vcpus
        self.log = Path(os.devnull)  # it prints nothing
        self.broken: KernelFailure | None = None
        self.commands: list[str] = []
        self.companions: dict[str, GuestProtocol] = {}

    def run(self, cmd: str, timeout: float = 10.0, *, allow_kernel_errors: bool = False
            ) -> CommandResult:
        self.commands.append(cmd)
        return CommandResult(cmd=cmd, status=0, output="")

    def console(self) -> str:
        return ""

    def ready(self) -> Recorder:
        return self

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Command:
    tag: str  # the marker tag: BEGIN-<tag>, END-<tag> <status>
    cmd: str

    @property
    def framed(self) -> str:
        return command_line(self.cmd, self.tag)


@dataclass(frozen=True)
class CheckPlan:
    check: str
    commands: tuple[Command, ...]
    companion: str = ""  # "": on the main guest; else its own job (a crash)
    skip: str = ""  # why it does not run on this kernel (it is not in the job)

    def script(self) -> str:
        """The test shell's command for this check: its framed commands, one after another."""
        return "\n".join(c.framed for c in self.commands)


@dataclass
class Plan:
    kernel_key: str
    checks: list[CheckPlan] = field(default_factory=list)

    def on(self, companion: str) -> list[CheckPlan]:
        return [c for c in self.checks if c.companion == companion and not c.skip]

    def jobs(self) -> list[str]:
        """"" (the main job: it boots the kernel even when no check of it types anything)
        and one name per check with a companion (a crash job each)."""
        return [""] + [c.check for c in self.checks if c.companion and not c.skip]


IDENTITY = "ltoboot-kernel"  # the main job's first step: which kernel booted


def identity_command(kernel_key: str) -> Command:
    """What the main job types first, so the replay can tell the kernel that booted from the
    kernel that was exported (a lab's URL may serve another's files)."""
    return Command(tag(kernel_key, IDENTITY, 0), "cat /proc/version")


def tag(kernel_key: str, check: str, index: int) -> str:
    """A marker tag, the same for the same kernel, check and command (export and replay
    make the plan apart), and not text that a command's output would carry."""
    digest = hashlib.sha256(f"{kernel_key}/{check}/{index}".encode()).hexdigest()[:12]
    return f"L{digest}"


def recorded(name: str, kernel: Kernel, firmware: str) -> tuple[list[str], str]:
    """The commands check `name` types on the kernel's guest that answers as expected, and on
    which guest (its companion kind, "" for the main one)."""
    check = registry.CHECKS[name]
    if check.plan is not None:
        return check.plan(kernel), check.companion
    main = Recorder(accel="tcg", firmware=firmware)
    where = main
    if check.companion:
        where = Recorder(accel="tcg", firmware="", label=check.companion)
        main.companions[check.companion] = where
    # what it recorded until it stopped (NotApplicable, or an answer it could not read) is
    # all it types on such a kernel
    with contextlib.suppress(Exception):
        check.run(main, kernel)
    return where.commands, check.companion


def make(kernel: Kernel, names: Iterable[str] | None = None, *, firmware: str = "") -> Plan:
    plan = Plan(kernel.key)
    for name in names or registry.CHECKS:
        reason = registry.why_skip(name, kernel)
        if reason is not None:
            plan.checks.append(CheckPlan(name, (), registry.CHECKS[name].companion, reason))
            continue
        cmds, companion = recorded(name, kernel, firmware)
        plan.checks.append(CheckPlan(name, tuple(Command(tag(kernel.key, name, i), c)
                                                 for i, c in enumerate(cmds)), companion))
    return plan
