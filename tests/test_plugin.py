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


def test_all_tests_of_one_kernel_run_in_one_worker(tmp_path: Path) -> None:
    # pytest 9.2 + xdist 3.8 silently dropped loadgroup (pytest-xdist#1386): each worker then
    # boots every kernel. This catches any such regression of the stack we install.
    out = tmp_path / "ran.txt"
    (tmp_path / "test_probe.py").write_text(PROBE.format(out=str(out)))
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = --dist loadgroup\n")
    got = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p",
                          "no:cacheprovider", str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True)
    assert got.returncode == 0, got.stdout + got.stderr
    runs = [line.split() for line in out.read_text().splitlines()]
    workers: dict[str, set[str]] = {}
    for label, worker in runs:
        workers.setdefault(label, set()).add(worker)
    assert sorted(workers) == ["arm64-thin", "x86_64-thin"]
    assert all(len(w) == 1 for w in workers.values()), workers
