"""External commands: the one way ltoboot runs them, and the guarantee that none outlives it.

Every child starts as the leader of a process group of its own, so that ending it ends what it
started too (make's compiler jobs, git bisect's steps). The harness ends every group it started
(SIGTERM, then SIGKILL) when the command is done with, on error, on Ctrl-C, on SIGTERM (the CLI
turns it into an exception) and at exit; PR_SET_PDEATHSIG covers the harness being SIGKILLed.
A failed command becomes the project's own error naming the command, its exit status and its log.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import resource
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from harness.base.errors import InfraError, LtobootError

_PR_SET_PDEATHSIG = 1
GRACE = 5.0  # seconds a group gets between SIGTERM and SIGKILL
_LIVE: dict[int, subprocess.Popen[Any]] = {}


def die_with_parent(sig: signal.Signals = signal.SIGKILL) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the process that started it dies, even by
    SIGKILL."""
    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return preexec


def _limited(limits: Mapping[int, int] | None) -> Callable[[], None]:
    """A preexec_fn: die_with_parent, and the resource limits (resource.RLIMIT_*: soft
    value) the child may not pass (what it reads from the network, say)."""
    die = die_with_parent(signal.SIGTERM)

    def preexec() -> None:
        for which, value in (limits or {}).items():
            _, hard = resource.getrlimit(which)
            resource.setrlimit(which, (value if hard == resource.RLIM_INFINITY
                                       else min(value, hard), hard))
        die()

    return preexec


def _missing(argv: Sequence[str], e: OSError) -> InfraError:
    return InfraError(f"cannot run {argv[0]} ({e.strerror}): install it or run ./setup.sh")


def spawn(argv: Sequence[str], *, stdout: int | IO[Any] | None = subprocess.PIPE,
          stderr: int | IO[Any] | None = subprocess.STDOUT, cwd: Path | None = None,
          env: Mapping[str, str] | None = None, text: bool = True,
          stdin: int | IO[Any] = subprocess.DEVNULL,
          limits: Mapping[int, int] | None = None) -> subprocess.Popen[Any]:
    """Start `argv` in a new process group that `end` (or the harness's exit) will end,
    within `limits` (resource.RLIMIT_* to a value) when given."""
    try:
        p = subprocess.Popen(list(argv), stdin=stdin, stdout=stdout, stderr=stderr,
                             cwd=cwd, env=None if env is None else dict(env), text=text,
                             errors="replace" if text else None, process_group=0,
                             preexec_fn=_limited(limits))
    except OSError as e:
        raise _missing(argv, e) from None
    _LIVE[p.pid] = p
    return p


def _signal_group(pgid: int, sig: signal.Signals) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)  # type: ignore[arg-type]


def end(p: subprocess.Popen[Any], grace: float = GRACE) -> None:
    """End `p` and everything in its process group: SIGTERM, then SIGKILL after `grace`."""
    try:
        if p.poll() is None or _group_alive(p.pid):
            _signal_group(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if p.poll() is not None and not _group_alive(p.pid):
                    break
                time.sleep(0.05)
            _signal_group(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=grace)
    finally:
        _LIVE.pop(p.pid, None)


@atexit.register
def end_all() -> None:
    """End every group still running (registered at exit; the CLI calls it on signals too)."""
    for p in list(_LIVE.values()):
        end(p, grace=2.0)


@contextlib.contextmanager
def running(argv: Sequence[str], **kwargs: Any) -> Any:
    """`spawn` as a context: the group is ended on leaving, however the block is left."""
    p = spawn(argv, **kwargs)
    try:
        yield p
    finally:
        end(p)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run(argv: Sequence[str], *, what: str, error: type[LtobootError] = InfraError,
        log: Path | None = None, cwd: Path | None = None,
        env: Mapping[str, str] | None = None, ok: Sequence[int] = (0,), fix: str = "",
        stdin: str | None = None, timeout: float | None = None) -> str:
    """Run `argv` to the end (given `stdin`, if any) and return its stdout. Any other exit
    status than `ok`, or not ending within `timeout` seconds when given, raises `error` with
    one line: what failed, the command, its status, its last line of stderr, the fix when
    there is one, and the log (which gets the whole output) when there is one."""
    with running(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env,
                 **({} if stdin is None else {"stdin": subprocess.PIPE})) as p:
        try:
            out, err = p.communicate(stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise error(f"{what}: `{shlex.join(argv)}` did not end in {timeout:g} s"
                        + (f"; {fix}" if fix else "")) from None
    if log is not None:
        with log.open("a") as f:
            f.write(f"$ {shlex.join(argv)}\n{out}{err}")
    if p.returncode not in ok:
        status = f"exit {p.returncode}" if p.returncode >= 0 else \
            f"killed by {signal.Signals(-p.returncode).name}"
        why = _last_line(err) or _last_line(out)
        if "No space left on device" in err + out:  # the machine's fault, whatever the command
            error, fix = InfraError, "free disk space (or set LTOBOOT_CACHE elsewhere)"
        raise error(f"{what}: `{shlex.join(argv)}` failed ({status})" + (f": {why}" if why else "")
                    + (f"; {fix}" if fix else "") + (f"; log: {log}" if log is not None else ""))
    return str(out)


def status(argv: Sequence[str], *, cwd: Path | None = None) -> int:
    """The exit status of `argv`, for commands that answer yes or no with it."""
    with running(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd) as p:
        return int(p.wait())
