"""Builds that fail the same way every time: a compiler's, linker's or binutil's error in make's
output. The same inputs (commit, config, toolchain, variant) fail again, so the failure is kept
beside where the build would have been, with its log, and answered again without a build.

A failure without such a line (OOM, a full disk, a signal) is never kept: it may pass next time.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.base import cache
from harness.base.errors import BuildError

# clang's and LLD's "file:line:col: error:", LLD's and the LLVM binutils' "tool: error: '...'"
# (llvm-strip on bitcode it cannot read)
COMPILE_ERROR = re.compile(
    r"^\S+:\d+:\d+: error: |^ld\.lld\S*: error: |^llvm-[a-z]+\S*: error: ", re.MULTILINE)


def compile_error(e: BuildError) -> bool:
    """Whether the failed make said a compiler or linker error. Its whole output, not the
    tail: with -j2, make finishes the jobs under way after the error, and a cold build prints
    a hundred lines more after it."""
    text = e.tail
    if e.log is not None:
        try:
            whole = e.log.read_text(errors="replace")
        except OSError:
            whole = ""
        text = whole[whole.rfind("\n$ make ") + 1:] if "\n$ make " in whole else whole or text
    return COMPILE_ERROR.search(text) is not None


def record(entry: Path) -> Path:
    return entry.with_name(entry.name + ".build-failed.json")


def raise_if_remembered(entry: Path) -> None:
    """Raise the kept failure of `entry`, if there is one whose log is still there."""
    failed = record(entry)
    try:
        known = json.loads(failed.read_text())
        log = Path(known["log"])
        message, tail = str(known["message"]), str(known["tail"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not log.is_file():  # the evidence was pruned: build again to have it
        failed.unlink(missing_ok=True)
        return
    cache.hold(failed)
    cache.shown(log)  # the error names it
    raise BuildError(f"{message} (remembered: delete {failed} to build again)", log, tail)


def remember(entry: Path, e: BuildError) -> None:
    """Keep `e` for `entry` when it is a failure the same inputs repeat."""
    if e.log is not None and compile_error(e):
        entry.parent.mkdir(parents=True, exist_ok=True)
        cache.write_atomic(record(entry), json.dumps(
            {"message": str(e).splitlines()[0], "log": str(e.log), "tail": e.tail}))
