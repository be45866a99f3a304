"""The initramfs: a newc archive, the same bytes for the same files, readable by cpio."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from harness.guest.initramfs import Entry, newc


def test_newc_is_reproducible_and_readable_by_cpio(tmp_path: Path) -> None:
    entries = [
        Entry("init", stat.S_IFREG | 0o755, b"#!/bin/sh\n"),
        Entry("dev", stat.S_IFDIR | 0o755),
        Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
    ]
    blob = newc(entries)
    assert blob == newc(list(reversed(entries)))
    assert len(blob) % 4 == 0
    archive = tmp_path / "a.cpio"
    archive.write_bytes(blob)
    listing = subprocess.run(["cpio", "-itv", "--quiet"], stdin=archive.open("rb"),
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert [line.split()[-1] for line in listing] == ["dev", "dev/console", "init"]
    console = next(line for line in listing if line.endswith("dev/console"))
    assert console.startswith("crw-------") and "5,   1" in console
