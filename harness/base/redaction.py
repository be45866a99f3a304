"""Secrets (a LAVA token) the harness holds: registered once, never printed or saved.

Everything the CLI prints of an error, and every crash file it writes, goes through `redact`.
"""

from __future__ import annotations

_HELD: set[str] = set()
MASK = "<redacted>"


def hold(value: str) -> str:
    """Register `value` as a secret; return it."""
    if len(value) >= 4:  # shorter: would mask ordinary text, and is no secret worth the name
        _HELD.add(value)
    return value


def redact(text: str) -> str:
    for secret in sorted(_HELD, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
