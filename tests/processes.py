"""Helpers for tests that start, signal and wait for processes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable


def default_sigint() -> None:
    """A preexec_fn: SIGINT's default disposition (a background shell may have ignored it)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll `predicate` until it holds or `seconds` pass; its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()
