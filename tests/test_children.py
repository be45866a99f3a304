"""No child outlives the harness, and a bisect never blames a commit for a harness error.

A slow fake `make` first on PATH stands in for a kernel build: it starts a grandchild (the
"compiler job") and waits, as make does. ltoboot gets SIGINT or SIGTERM meanwhile; afterwards
neither the fake make nor its job may be left, and the clone bisect works in must be out of
bisect (the tester's tree it was never in).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import default_sigint, wait_for
from tests.synthetic import fake_tree

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def _running(pattern: str) -> list[str]:
    got = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
    return [line for line in got.stdout.splitlines() if "pgrep" not in line]


class SlowMake:
    """A `make` that says it started, starts a job that would run for minutes, and waits."""

    def __init__(self, tmp: Path) -> None:
        self.seconds = random.randint(4000, 9000)  # the job's argv is unique to this test
        self.started = tmp / "make-started"
        self.bin = tmp / "bin"
        self.bin.mkdir()
        make = self.bin / "make"
        make.write_text(f"#!/bin/sh\necho $$ >> {self.started}\nsleep {self.seconds} &\nwait\n")
        make.chmod(0o755)

    def left(self) -> list[str]:
        return _running(f"sleep {self.seconds}")

    def env(self, tmp: Path) -> dict[str, str]:
        return {**os.environ, "PATH": f"{self.bin}:{os.environ['PATH']}",
                "LTOBOOT_CACHE": str(tmp / "cache")}

    def interrupt(self, run: subprocess.Popen[str], sig: str) -> str:
        """Once this make and its job run, send `sig` to `run`; its output once it ended."""
        try:
            assert wait_for(self.started.exists, 60), "the fake make never started"
            assert wait_for(lambda: bool(self.left()), 10)
            run.send_signal(SIGNALS[sig])
            return run.communicate(timeout=60)[0]
        finally:
            run.kill()


def ltoboot(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "harness.faces.cli", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=default_sigint)


@pytest.mark.parametrize("sig", SIGNALS)
def test_no_build_job_outlives_ltoboot_run(sig: str, tmp_path: Path) -> None:
    make = SlowMake(tmp_path)
    run = ltoboot(["run", "--arch", "x86_64", "--kernel-src", str(fake_tree(tmp_path / "linux"))],
                  make.env(tmp_path))
    out = make.interrupt(run, sig)
    assert run.returncode == 130 and "ltoboot: interrupted" in out, out
    assert "Traceback" not in out
    assert wait_for(lambda: not make.left(), 3), make.left()
    assert not _running(f"{make.bin}/make")


@pytest.mark.parametrize("sig", SIGNALS)
def test_bisect_ends_its_steps_before_it_resets_the_tree(sig: str, tmp_path: Path) -> None:
    make = SlowMake(tmp_path)
    tree = fake_tree(tmp_path / "linux", git=True)
    head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    run = ltoboot(["bisect", "--good", "HEAD~3", "--bad", "HEAD", "--kernel-src", str(tree)],
                  make.env(tmp_path))
    out = make.interrupt(run, sig)
    assert run.returncode == 130 and "Traceback" not in out, out
    assert wait_for(lambda: not make.left(), 3), make.left()
    (clone,) = [p for p in (tmp_path / "cache" / "bisect-trees").iterdir()
                if not p.name.startswith(".")]
    for where in (tree, clone):
        assert not _running(f"bisect-step.*{where}") and not _running(f"git.* -C {where} bisect")
        git_dir = where / ".git"
        assert not any((git_dir / n).exists()
                       for n in ("BISECT_LOG", "BISECT_RUN", "BISECT_START"))
    now = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    branch = subprocess.run(["git", "-C", str(tree), "branch", "--show-current"],
                            capture_output=True, text=True).stdout.strip()
    assert (now, branch) == (head, "main")


def test_a_step_that_meets_an_error_stops_the_bisect_and_blames_no_commit(
        tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux", git=True)
    fragment = tmp_path / "bad.config"
    fragment.write_bytes(b"CONFIG_X=y\n\xff\xfe not text\n")
    env = {**os.environ, "LTOBOOT_CACHE": str(tmp_path / "cache")}
    got = subprocess.run([sys.executable, "-m", "harness.faces.cli", "bisect", "--good", "HEAD~3",
                          "--bad", "HEAD", "--kernel-src", str(tree), "--fragment", str(fragment)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 2, got.stdout + got.stderr
    assert "first bad commit" not in got.stdout + got.stderr
    assert "git bisect run stopped without a verdict" in got.stderr
    assert "is not text (UTF-8)" in got.stderr and "Traceback" not in got.stderr
    assert not (tree / ".git" / "BISECT_LOG").exists()


def test_swapped_good_and_bad_is_one_clear_line(tmp_path: Path) -> None:
    tree = fake_tree(tmp_path / "linux", git=True)
    env = {**os.environ, "LTOBOOT_CACHE": str(tmp_path / "cache")}
    got = subprocess.run([sys.executable, "-m", "harness.faces.cli", "bisect", "--good", "HEAD",
                          "--bad", "HEAD~3", "--kernel-src", str(tree)],
                         env=env, capture_output=True, text=True, timeout=60)
    assert got.returncode == 2 and "are they swapped?" in got.stderr, got.stderr
    assert "Traceback" not in got.stderr and len(got.stderr.splitlines()) == 1
