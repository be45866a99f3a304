"""The cache as a user sees it: listed by kind with sizes and last use, pruned least recently
used first; an entry another process holds survives a prune whole, a removed one goes whole,
and every command keeps the cache under its bound."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.base import cache
from harness.base.errors import UsageError
from harness.faces import cli
from harness.runs import housekeeping


def _entry(root: Path, kind: str, name: str, size: int, age_days: float) -> Path:
    def produce(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "data").write_bytes(os.urandom(size))

    entry = cache.publish(root / kind / name, produce)
    then = time.time() - age_days * 86400
    os.utime(entry, (then, then))
    return entry


def _hold_until_told(root: str, entry: str, ready: str, done: str) -> None:
    os.environ["LTOBOOT_CACHE"] = root
    cache.publish(Path(entry), lambda tmp: tmp.mkdir())  # a cache hit: held from now on
    Path(ready).write_text("")
    while not Path(done).exists():
        time.sleep(0.05)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    yield cache.cache_root()
    cache.release_all()


def test_prune_leaves_what_another_process_holds_whole(root: Path, tmp_path: Path) -> None:
    oldest = _entry(root, "variants", "x86_64-thin-a-1", 200_000, 30)
    older = _entry(root, "variants", "x86_64-thin-b-2", 200_000, 20)
    newer = _entry(root, "initramfs", "x86_64-3.cpio", 100_000, 1)
    cache.release_all()  # this process uses none of them now
    ready, done = tmp_path / "ready", tmp_path / "done"
    other = multiprocessing.get_context("fork").Process(
        target=_hold_until_told, args=(str(root), str(oldest), str(ready), str(done)))
    other.start()
    try:
        while not ready.exists():
            time.sleep(0.05)
        assert housekeeping.held(oldest) and not housekeeping.held(older)
        result = housekeeping.prune(max_size=0)
        assert oldest.is_dir() and (oldest / "data").stat().st_size == 200_000  # whole
        assert not older.exists() and not newer.exists()
        assert [e.path for e in result.kept_in_use] == [oldest]
        assert [e.path for e in result.removed] == [older, newer]
        assert not [p for p in (root / "variants").iterdir() if p.name.startswith(".trash")]
    finally:
        done.write_text("")
        other.join(10)
    assert housekeeping.prune(max_size=0).removed[0].path == oldest  # let go: now it goes


def test_least_recently_used_first_and_only_down_to_the_bound(root: Path) -> None:
    old = _entry(root, "exports", "a", 300_000, 9)
    mid = _entry(root, "exports", "b", 300_000, 5)
    new = _entry(root, "exports", "c", 300_000, 1)
    cache.release_all()
    total = sum(e.total for e in housekeeping.entries())
    result = housekeeping.prune(max_size=total - 100_000)
    assert [e.path for e in result.removed] == [old]
    assert mid.exists() and new.exists()
    assert [e.path for e in housekeeping.prune(older_than_days=3).removed] == [mid]


def test_a_cache_hit_marks_the_entry_used(root: Path) -> None:
    e = _entry(root, "exports", "a", 1000, 9)
    cache.release_all()
    before = e.stat().st_mtime
    cache.publish(e, lambda tmp: None)
    assert e.stat().st_mtime > before + 86400


def test_listing_says_kinds_sizes_and_last_use(root: Path) -> None:
    _entry(root, "variants", "v", 50_000, 2)
    _entry(root, "src", "abc", 10_000, 1)
    (root / "logs").mkdir(exist_ok=True)
    (root / "logs" / "build.log").write_text("x" * 5000)
    text = housekeeping.listing(housekeeping.entries())
    assert "sources: 1," in text and "variants: 1," in text and "logs: 1," in text
    assert "2 d ago" in text and text.splitlines()[-1].startswith("total: ")


def test_the_bound_and_sizes_are_checked() -> None:
    assert housekeeping.parse_size("30G") == 30 * 1024**3
    assert housekeeping.parse_size("500MiB") == 500 * 1024**2
    assert housekeeping.parse_size("1048576") == 1048576
    for bad in ("lots", "-1G", "1.5.5G"):
        with pytest.raises(UsageError):
            housekeeping.parse_size(bad)


def _made_by_another_run(root: Path, kind: str, name: str, size: int, age_days: float) -> Path:
    """An entry as an earlier run left it: made, then that run ended."""
    entry = root / kind / name
    entry.mkdir(parents=True)
    (entry / "data").write_bytes(os.urandom(size))
    then = time.time() - age_days * 86400
    os.utime(entry, (then, then))
    return entry


def test_every_command_keeps_the_cache_under_its_bound(
        root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    old = _made_by_another_run(root, "exports", "a", 300_000, 9)
    mine = _entry(root, "exports", "b", 200_000, 1)  # this command made it: it stays
    cache.release_all()
    monkeypatch.setenv(housekeeping.MAX_ENV, "100K")
    assert cli.main(["coverage"]) == 0
    err = capsys.readouterr().err
    assert "cache over its bound (100.0 KiB, $LTOBOOT_CACHE_MAX): removed 1 least recently " \
        "used entries (exports)" in err
    assert not old.exists() and mine.exists()


def test_an_entry_prune_cannot_remove_is_named_and_the_rest_still_go(
        root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """An entry made by root through sudo, pruned by a user: the prune once stopped there with
    an internal error (PermissionError)."""
    stuck = _entry(root, "exports", "made-by-root", 300_000, 9)
    other = _entry(root, "exports", "b", 300_000, 5)
    cache.release_all()
    rename = os.rename

    def refused(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == stuck:
            raise PermissionError(errno.EACCES, "Permission denied", str(src))
        rename(src, dst)

    monkeypatch.setattr(os, "rename", refused)
    assert cli.main(["cache", "prune", "--max-size", "0"]) == 2
    out = capsys.readouterr().out.splitlines()
    assert [line for line in out if str(stuck) in line] == [
        f"not removed: {stuck} (Permission denied): make {stuck.parent} writable for you or "
        "remove it as the user that made it"]
    assert stuck.is_dir() and (stuck / "data").stat().st_size == 300_000  # whole
    assert not other.exists()
    assert re.fullmatch(r"ltoboot: cache pruned: 1 removed, 29\d\.\d KiB freed; "
                        r"1 not removed \(29\d\.\d KiB\): see above", out[-1])


def test_leftover_trash_is_listed_and_every_prune_removes_it_first(
        root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A prune killed between renaming an entry to trash and deleting it left trash that
    `ltoboot cache` did not count ("total: 0 B" beside 66 MB) and no prune removed."""
    trash = root / "variants" / ".trash-x86_64-thin-a-1-2-0123456789ab"
    trash.mkdir(parents=True)
    (trash / "data").write_bytes(os.urandom(100_000))
    in_tree = root / "src" / "abc" / "linux" / ".trash-.ltoboot-x86_64-thin-k-1-2-0123456789ab"
    in_tree.mkdir(parents=True)
    (in_tree / "vmlinux.o").write_bytes(os.urandom(50_000))
    assert cli.main(["cache"]) == 0
    text = capsys.readouterr().out
    assert "leftover trash: 2, " in text and str(trash) in text and str(in_tree) in text
    assert not text.splitlines()[-1].startswith("total: 0 B")
    assert housekeeping.prune(max_size=10 * 1024**3).removed  # far under the bound: still
    assert not trash.exists() and not in_tree.exists()
    assert (root / "src" / "abc" / "linux").is_dir()


def test_the_prune_after_a_command_keeps_what_the_command_wrote_made_and_printed(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It once removed the build log whose path the command had just printed."""
    made = _entry(root, "exports", "made-now", 1000, 0)
    cache.release_all()  # made in this run, even when no longer held
    logs = root / "logs"
    logs.mkdir()
    written = logs / "build-x86_64-thin-0123.log"
    written.write_text("make\n")
    printed = logs / "build-arm64-thin-4567.log"  # a cache hit's: written by an earlier run
    printed.write_text("make\n")
    old = logs / "boot-x86_64-thin-89ab.log"
    old.write_text("boot\n")
    then = time.time() - 86400
    for f in (printed, old):
        os.utime(f, (then, then))
    cache.shown(printed)
    monkeypatch.setenv(housekeeping.MAX_ENV, "0")
    assert "removed 1 least recently used entries (logs)" in housekeeping.keep_bounded()
    assert written.exists() and printed.exists() and made.exists() and not old.exists()


def test_a_crash_file_outlives_the_prune_after_its_command(
        root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def bug(args: object) -> int:
        _entry(root, "exports", "made-now", 1000, 0)
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "coverage", bug)
    monkeypatch.setenv(housekeeping.MAX_ENV, "0")
    assert cli.main(["coverage"]) == 3
    crash = Path(capsys.readouterr().err.split("traceback in ")[1].split(")")[0])
    assert crash.is_file()


def test_a_bad_bound_is_one_line_before_the_command_runs(
        root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """LTOBOOT_CACHE_MAX=lots was ignored without a word by the prune after each command (after
    its build), and `--max-size ''` pruned to the default bound."""
    ran: list[object] = []

    def command(args: object) -> int:
        ran.append(args)
        return 0

    monkeypatch.setitem(cli.COMMANDS, "coverage", command)
    monkeypatch.setenv(housekeeping.MAX_ENV, "lots")
    assert cli.main(["coverage"]) == 2
    assert ran == []
    assert capsys.readouterr().err == ("ltoboot: error: LTOBOOT_CACHE_MAX 'lots': give a size "
                                       "such as 30G, 500M or 1048576\n")
    assert cli.main(["bisect-step", "--kernel-src", str(root)]) == 255  # no verdict on a commit
    assert "LTOBOOT_CACHE_MAX 'lots'" in capsys.readouterr().err
    monkeypatch.delenv(housekeeping.MAX_ENV)
    assert cli.main(["cache", "prune", "--max-size", ""]) == 2
    assert capsys.readouterr().err == ("ltoboot: error: --max-size '': give a size such as "
                                       "30G, 500M or 1048576\n")


def test_a_hold_that_waited_out_a_prune_holds_the_entry_made_again(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hold() waited while a prune removed the entry, and the prune unlinked the use lock: the
    shared lock hold() then got was on a file no longer there, so the entry made again was not
    held and the next prune deleted it in use."""
    entry = _entry(root, "exports", "a", 1000, 9)
    cache.release_all()
    waiting = threading.Event()
    holder = threading.Thread(target=cache.hold, args=(entry,))
    flock, rename = fcntl.flock, os.rename

    def flock_told(fd: int, operation: int) -> None:
        if operation == fcntl.LOCK_SH:
            waiting.set()  # the holder has opened the use lock the prune is about to unlink
        flock(fd, operation)

    def rename_while_held(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src) == entry and not holder.is_alive() and not waiting.is_set():
            holder.start()  # the prune holds the use lock exclusively now
            assert waiting.wait(10)
        rename(src, dst)

    monkeypatch.setattr(fcntl, "flock", flock_told)
    monkeypatch.setattr(os, "rename", rename_while_held)
    assert [e.path for e in housekeeping.prune(max_size=0).removed] == [entry]
    holder.join(10)
    assert not holder.is_alive()
    cache.publish(entry, lambda tmp: tmp.mkdir())  # made again: this process holds it
    assert housekeeping.held(entry)
    assert housekeeping.prune(max_size=0).kept_in_use[0].path == entry and entry.is_dir()
