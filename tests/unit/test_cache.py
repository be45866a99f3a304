"""The cache: entries appear whole and once across processes and threads, failures are replayed
within a run and retried in the next, a killed producer's leftovers are never trusted,
temporaries are each call's own."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from harness.base import cache, progress
from harness.base.errors import BuildError


def _produce_slowly(entry: str, counter: str) -> None:
    def produce(tmp: Path) -> None:
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.1)
        tmp.write_text("done")

    cache.publish(Path(entry), produce)


def test_concurrent_producers_produce_once(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "_sink", lambda line: None)  # children's "waiting" lines
    entry, counter = tmp_path / "k" / "entry", tmp_path / "count"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_produce_slowly, args=(str(entry), str(counter)))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert counter.read_text() == "x"
    assert entry.read_text() == "done"


def test_failure_is_replayed_within_the_run_and_retried_in_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = tmp_path / "e"
    monkeypatch.setenv(cache.RUN_ID_ENV, "run-1")
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)

    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise BuildError("make failed")

    with pytest.raises(BuildError):
        cache.publish(entry, broken)
    assert not entry.exists() and not list(tmp_path.glob(".tmp-*"))
    calls = []
    with pytest.raises(BuildError, match="make failed"):
        cache.publish(entry, lambda tmp: calls.append(tmp))  # same run: fail fast, no retry
    assert calls == []
    monkeypatch.setenv(cache.RUN_ID_ENV, "run-2")

    def good(tmp: Path) -> None:
        tmp.write_text("ok")

    cache.publish(entry, good)
    assert entry.read_text() == "ok"


def test_leftover_of_a_killed_producer_is_never_trusted(tmp_path: Path) -> None:
    entry = tmp_path / "e"
    stale = tmp_path / f".tmp-e-{os.getpid() + 1}"
    stale.mkdir()
    (stale / "half-built").write_text("")
    cache.publish(entry, lambda tmp: tmp.mkdir())
    assert entry.is_dir() and not stale.exists() and not (entry / "half-built").exists()


def test_unwritable_cache_is_one_clear_error(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("LTOBOOT_CACHE", str(blocker / "cache"))
    with pytest.raises(Exception, match="set LTOBOOT_CACHE to a writable directory"):
        cache.cache_root()


def test_threads_asking_for_the_cache_at_once_all_get_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The arches of a run ask from threads of one process: one thread's write probe must not
    be another's (it once was: "cache directory ... is not usable (No such file or
    directory)")."""
    import threading

    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(200):
                getattr(cache, "_USABLE", set()).clear()  # ask anew each time
                cache.cache_root()
        except BaseException as e:
            errors.append(e)

    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_remembered_hash_follows_the_file(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "linux.tar.xz"
    f.write_bytes(b"one")
    assert cache.file_sha256_remembered(f) == cache.file_sha256(f)
    assert not (tmp_path / "cache" / "hashes").exists()  # too fresh to be remembered
    time.sleep(2.1)
    assert cache.file_sha256_remembered(f) == cache.file_sha256(f)
    assert len(list((tmp_path / "cache" / "hashes").iterdir())) == 1
    stamp = f.stat()
    f.write_bytes(b"two")  # same size, new content, even with the old mtime back
    os.utime(f, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert cache.file_sha256_remembered(f) == cache.file_sha256(f)


def _write_many(target: str, text: str, rounds: int) -> None:
    import threading

    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(rounds):
                cache.write_atomic(Path(target), text)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_threads_and_processes_writing_one_target_at_once(tmp_path: Path) -> None:
    """write_atomic's temporary is the call's own: the arches' threads of one run once
    recorded the same tarball hash at once and removed each other's temporary
    (FileNotFoundError on the rename, the run ended with an internal error)."""
    target = tmp_path / "hashes" / "same.json"
    target.parent.mkdir()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(target), f"writer {i}\n" * 100, 300))
             for i in range(3)]
    for p in procs:
        p.start()
    _write_many(str(target), "writer main\n" * 100, 300)
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    text = target.read_text()  # whole: one writer's text, never a mix or half
    assert text in {f"writer {w}\n" * 100 for w in ("main", "0", "1", "2")}
    assert [p.name for p in target.parent.iterdir()] == ["same.json"]  # no temporary left
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_a_cache_path_kbuild_cannot_build_in_is_refused_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels and their modules are built in the cache, and kbuild stops at a space or colon
    in its paths: found when the cache is first asked for, not as a module build that fails
    after the boot (which once made the module checks FAIL a correct kernel)."""
    from harness.base.errors import UsageError

    for bad in ("my cache", "a:b"):
        monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / bad))
        with pytest.raises(UsageError, match="set LTOBOOT_CACHE to a path without them"):
            cache.cache_root()
        assert not (tmp_path / bad).exists()
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cäche"))
    assert cache.cache_root() == tmp_path / "cäche"
