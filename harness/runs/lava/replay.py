"""A LAVA job's console, replayed as a guest: the checks run on it as on our own QEMU.

The console text of a job (its log's target lines) holds each planned command's framed
output. ReplayGuest.run(cmd) hands a check the next recorded answer to `cmd`, parsed by the
same console functions as a live command; kernel failures in it count as they would live.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.base.errors import InfraError, KernelFailure
from harness.guest import console
from harness.guest.console import CommandResult
from harness.guest.protocol import GuestProtocol
from harness.guest.session import log_tail
from harness.runs.lava.plan import CheckPlan, Command


@dataclass(frozen=True)
class Answer:
    cmd: str
    result: CommandResult | None  # None: the command began but its end never came
    after: str = ""  # then: what the console printed after it began


def answers(text: str, commands: Sequence[Command]) -> list[Answer]:
    """The answers to `commands` found in console `text`, in order; a command that never
    began (the guest stopped before it) is left out."""
    found = []
    for c in commands:
        begin = re.search(console.begin_re(c.tag), text)
        if begin is None:
            continue
        end = re.compile(console.end_re(c.tag)).search(text, begin.end())
        if end is None:
            found.append(Answer(c.cmd, None, text[begin.end():]))
            continue
        raw = text[begin.end():end.start()]
        found.append(Answer(c.cmd, console.parse_result(c.cmd, raw, int(end.group(1)))))
    return found


class ReplayGuest:
    """The guest of one LAVA job, as far as the checks can tell. `complete`: the job's test
    shell ran to its end (else the guest stopped, and what is missing is the kernel's)."""

    def __init__(self, text: str, plans: Sequence[CheckPlan], *, log: Path, label: str,
                 accel: str, firmware: str, complete: bool, vcpus: int = 1) -> None:
        self.text, self.log, self.label, self.vcpus = text, log, label, vcpus
        self.accel, self.firmware, self.complete = accel, firmware, complete
        self.broken: KernelFailure | None = None
        self.companions: dict[str, GuestProtocol] = {}
        self._answers = answers(text, [c for p in plans for c in p.commands])
        self._next = 0

    def run(self, cmd: str, timeout: float = 10.0, *, allow_kernel_errors: bool = False
            ) -> CommandResult:
        if self.broken is not None:
            raise KernelFailure("broken", f"guest broken earlier by {self.broken.kind}: "
                                f"{self.broken.summary}", log=self.log)
        for i in range(self._next, len(self._answers)):
            if self._answers[i].cmd == cmd:
                self._next = i + 1
                return self._judge(self._answers[i], allow_kernel_errors)
        if not self.complete:
            raise self._fail("exited", f"the guest stopped before {cmd!r}")
        raise InfraError(f"the LAVA job {self.label} did not run {cmd!r}: the job was made "
                         "for other checks or another kernel; export it again")

    def _judge(self, answer: Answer, allow_kernel_errors: bool) -> CommandResult:
        if answer.result is None:
            events = console.classify(answer.after)
            kind, line = next(((k, s) for k, s in events if k in console.FATAL),
                              ("hang", f"{answer.cmd!r} gave no answer before the job ended"))
            raise self._fail(kind, line)
        result = answer.result
        fatal = [(k, line) for k, line in result.events if k in console.FATAL]
        if fatal and not allow_kernel_errors:
            raise self._fail(fatal[0][0], f"{fatal[0][1]} (while running {answer.cmd!r})")
        return result

    def _fail(self, kind: str, summary: str) -> KernelFailure:
        self.broken = KernelFailure(kind, summary, excerpt=log_tail(self.log), log=self.log)
        return self.broken

    def console(self) -> str:
        return self.text

    def ready(self) -> ReplayGuest:
        return self

    def close(self) -> None:
        pass
