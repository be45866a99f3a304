"""The plugin's promises that depend on pytest-xdist behaving: one worker per kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = '''
import os
def _record(spec):
    with open({out!r}, "a") as f:
        f.write(f"{{spec.label}} {{os.environ.get('PYTEST_XDIST_WORKER')}}\\n")
def test_a(kernel_spec): _record(kernel_spec)
def test_b(kernel_spec): _record(kernel_spec)
def test_c(kernel_spec): _record(kernel_spec)
def test_d(kernel_spec): _record(kernel_spec)
'''


def _loadgroup(tmp_path: Path, source: str, workers: int) -> str:
    """Run the test file `source` (its {out} the file it writes) under xdist's loadgroup in
    a pytest of its own; what it wrote."""
    out = tmp_path / "ran.txt"
    (tmp_path / "test_probe.py").write_text(source.format(out=str(out)))
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --dist loadgroup\n")
    got = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", str(workers), "-p",
                          "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
    return out.read_text()


def test_all_tests_of_one_kernel_run_in_one_worker(tmp_path: Path) -> None:
    # pytest 9.2 + xdist 3.8 silently dropped loadgroup (pytest-xdist#1386): each worker then
    # boots every kernel. This catches any such regression of the stack we install.
    runs = [line.split() for line in _loadgroup(tmp_path, PROBE, workers=2).splitlines()]
    workers: dict[str, set[str]] = {}
    for label, worker in runs:
        workers.setdefault(label, set()).add(worker)
    assert sorted(workers) == ["arm64-thin", "x86_64-thin"]
    assert all(len(w) == 1 for w in workers.values()), workers


GROUPS = '''
import pytest
from harness.faces.pytest_plugin.hooks import POOLS
def _say(what):
    with open({out!r}, "a") as f:
        f.write(what + "\\n")
class Pool:
    def pause(self): _say("pause")
    def close(self): _say("close")
POOLS.append(Pool())
@pytest.mark.xdist_group("one")
def test_one_a(): _say("one")
@pytest.mark.xdist_group("two")
def test_two_a(): _say("two")
@pytest.mark.xdist_group("one")
def test_one_b(): _say("one")
@pytest.mark.xdist_group("two")
def test_two_b(): _say("two")
'''


def test_a_groups_last_test_closes_the_workers_guests(tmp_path: Path) -> None:
    """Idle TCG guests cost CPU: the worker closes its guests when it moves on to another
    group, never between two tests of one group: there they pause until their next use."""
    said = _loadgroup(tmp_path, GROUPS, workers=1).split()
    assert said.count("close") == 2, said
    # each group's two tests together, a pause between them, then a close
    assert said in (["one", "pause", "one", "close", "two", "pause", "two", "close"],
                    ["two", "pause", "two", "close", "one", "pause", "one", "close"]), said
