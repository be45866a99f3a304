"""Progress lines for long work (builds take minutes): one place decides where they go."""

from __future__ import annotations

import sys
from collections.abc import Callable

_sink: Callable[[str], None] | None = None


def set_sink(sink: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """Send progress lines to `sink` (None: stderr); returns the sink it replaces."""
    global _sink
    previous, _sink = _sink, sink
    return previous


def say(message: str) -> None:
    line = f"ltoboot: {message}"
    if _sink is not None:
        _sink(line)
    else:
        print(line, file=sys.stderr, flush=True)


def duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"
