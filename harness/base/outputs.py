"""Output paths a command was given (--junit, --json, --reply, --kcidb, --out), checked before
anything is built or booted, so that a typo does not cost a build and its result."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.base.errors import UsageError


def _writable_dir(directory: Path) -> str | None:
    """Why files cannot be made in `directory` (None: they can): tried, not guessed, since
    root passes every permission test and /proc refuses all the same."""
    if not directory.is_dir():
        return "no such directory"
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=".ltoboot-probe-")
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        return e.strerror or str(e)
    return None


def output_file(flag: str, value: str) -> Path:
    """An output file option (--junit, --json, --reply): checked before anything is built, so
    a typo does not cost a build and its result."""
    path = Path(value).expanduser().absolute()
    if path.is_dir():
        raise UsageError(f"{flag} {value}: is a directory; give a file name in it")
    why = _writable_dir(path.parent)
    if why:
        raise UsageError(f"{flag} {value}: cannot write in {path.parent} ({why}); give a "
                         "file in a writable directory")
    return path


def output_dir(flag: str, value: str) -> Path:
    """A new or empty output directory (--out), in a directory it can be made in."""
    path = Path(value).expanduser().absolute()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise UsageError(f"{flag} {value}: exists and is not an empty directory; give a new "
                         "directory")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    why = _writable_dir(path if path.is_dir() else parent)
    if why:
        raise UsageError(f"{flag} {value}: cannot write there ({why}); give a directory "
                         "you can write")
    return path


OUTPUT_FILES = (("junit", "--junit"), ("json", "--json"), ("reply", "--reply"),
                ("kcidb", "--kcidb"))
OUTPUT_DIRS = (("out", "--out"),)


def check(args: object) -> None:
    """Every output path a command was given, checked before it does anything."""
    for attr, flag in OUTPUT_FILES:
        if isinstance(value := getattr(args, attr, None), str):
            output_file(flag, value)
    for attr, flag in OUTPUT_DIRS:
        if isinstance(value := getattr(args, attr, None), str):
            output_dir(flag, value)
