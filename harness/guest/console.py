"""The console protocol, as pure functions: markers, failure patterns, output parsing.

Commands run wrapped so that output and exit status are exact on a console shared with printk:
every line the command prints is tagged with `|`, and the begin/end markers carry a random
tag (written split in what we type, so the echo of our own input never matches them). Untagged
lines between the markers are kernel messages: kept apart and scanned for failures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.base.errors import FailureKind

READY_RE = r"LTOBOOT-READY (\S+)"
_TS = r"(?:\[ *\d+\.\d+\] )?"
# a kernel's first printk line (with its time): what ends the firmware's part of a boot
KERNEL_LINE_RE = r"\[ *\d+\.\d{6}\] "

# (kind, regex) in priority order. Anchored at a line start (after an optional printk time),
# so a tagged command output line such as dmesg's "|[ 1.2] WARNING: ..." never matches.
FAILURES: tuple[tuple[FailureKind, str], ...] = (
    (FailureKind.CFI, rf"(?m)^{_TS}CFI failure at [^\r\n]*"),
    (FailureKind.PANIC, rf"(?m)^{_TS}Kernel panic - not syncing[^\r\n]*"),
    (FailureKind.BUG, rf"(?m)^{_TS}(?:kernel )?BUG: [^\r\n]*"),
    (FailureKind.OOPS, rf"(?m)^{_TS}(?:Internal error: )?Oops[: ][^\r\n]*"),
    (FailureKind.WARNING, rf"(?m)^{_TS}WARNING: CPU: \d+ PID: \d+ at [^\r\n]*"),
)
FATAL = (FailureKind.CFI, FailureKind.PANIC, FailureKind.BUG, FailureKind.OOPS)
FAILURE_RES = {kind: re.compile(rx) for kind, rx in FAILURES}


def without_time(line: str) -> str:
    """A kernel line without its printk time stamp."""
    return re.sub(rf"^{_TS}", "", line.strip())


def command_line(cmd: str, tag: str) -> str:
    """The line we type: markers, the command in a subshell (an oops kills it, not PID 1)."""
    return (f"set -o pipefail; printf '%s%s\\n' BEGIN- {tag}; "
            f"( {cmd} ) 2>&1 </dev/null | sed 's/^/|/'; "
            f"printf '\\n%s%s %s\\n' END- {tag} $?")


# what may follow a marker: its own line end, or a kernel line that the console wrote right
# after it, before the line end (another CPU's printk: after an oops everything reaches the
# console, and a second vCPU prints while the shell does)
_MARKER_END = rf"(?:\r*\n|(?={KERNEL_LINE_RE}))"


def begin_re(tag: str) -> str:
    return rf"BEGIN-{tag}{_MARKER_END}"


def end_re(tag: str) -> str:
    return rf"END-{tag} (\d+){_MARKER_END}"


@dataclass
class CommandResult:
    cmd: str
    status: int
    output: str  # exactly what the command printed (stdout and stderr), without the tags
    kernel_lines: list[str] = field(default_factory=list)  # printk lines that came meanwhile
    events: list[tuple[str, str]] = field(default_factory=list)  # (kind, line) failures seen

    @property
    def ok(self) -> bool:
        return self.status == 0


def classify(text: str) -> list[tuple[str, str]]:
    """Every failure line in `text`, as (kind, line), in the order they appear."""
    found = []
    for kind, rx in FAILURE_RES.items():
        found += [(m.start(), kind, m.group(0).strip()) for m in rx.finditer(text)]
    return [(kind, line) for _, kind, line in sorted(found)]


def split_output(raw: str) -> tuple[str, list[str]]:
    """Split what came between the markers into (command output, kernel lines)."""
    output, kernel = [], []
    for line in raw.replace("\r\n", "\n").replace("\r", "").split("\n"):
        if line.startswith("|"):
            output.append(line[1:])
        elif line.strip():
            kernel.append(line)
    return "\n".join(output), kernel


def parse_result(cmd: str, raw: str, status: int) -> CommandResult:
    output, kernel = split_output(raw)
    return CommandResult(cmd=cmd, status=status, output=output, kernel_lines=kernel,
                         events=classify("\n".join(kernel)))
