"""A build killed halfway is never trusted, and workers on a cold cache build once.

The build here is a real one, kept short so it runs on every CI: our probe modules, built with
M= against the default kernel into a scratch cache. It goes through the same cache.publish as
the kernel builds, and make runs under a wrapper that counts top-level invocations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.faces.pytest_plugin.fixtures import Kernels
from harness.guest import modules

BUILD = ("import sys; from pathlib import Path; from harness.kernel.model import Kernel; "
         "from harness.guest import modules; "
         "k = Kernel.from_json(Path(sys.argv[1]).read_text(), Path(sys.argv[2])); "
         "print(modules.probe_modules(k).dir)")


def _makes_of(scratch: Path) -> list[str]:
    got = subprocess.run(["pgrep", "-f", f"make.*{scratch}"], capture_output=True, text=True)
    return got.stdout.split()


def test_killed_build_is_rebuilt_once_for_all_workers(kernels: Kernels, primary_arch: str,
                                                      tmp_path: Path) -> None:
    kernel = kernels.get(arch=primary_arch)
    assert kernel.build_dir is not None
    scratch, bin_dir, count = tmp_path / "cache", tmp_path / "bin", tmp_path / "makes"
    bin_dir.mkdir()
    real_make = subprocess.run(["sh", "-c", "command -v make"], capture_output=True,
                               text=True, check=True).stdout.strip()
    wrapper = bin_dir / "make"
    wrapper.write_text("#!/bin/sh\n"  # sub-makes inherit LTOBOOT_TEST_MAKE and are not counted
                       f'[ -n "$LTOBOOT_TEST_MAKE" ] || echo "$$" >> {count}\n'
                       f'LTOBOOT_TEST_MAKE=1 exec {real_make} "$@"\n')
    wrapper.chmod(0o755)
    meta = tmp_path / "kernel.json"
    meta.write_text(kernel.to_json(kernel.build_dir))
    env = {**os.environ, "LTOBOOT_CACHE": str(scratch),
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    argv = [sys.executable, "-c", BUILD, str(meta), str(kernel.build_dir)]

    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not list(scratch.glob("modules/.tmp-*/src/*.o")):  # halfway: objects appear
        assert time.monotonic() < deadline and first.poll() is None, "the build never started"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + 10
    while _makes_of(scratch):  # make dies with the harness (PR_SET_PDEATHSIG)
        assert time.monotonic() < deadline, "make outlived the killed build"
        time.sleep(0.1)
    published = [p for p in (scratch / "modules").iterdir()
                 if not p.name.startswith(".")]
    assert published == [], "a killed build left an entry"
    assert len(count.read_text().split()) == 1

    workers = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True,
                                stderr=subprocess.DEVNULL) for _ in range(3)]
    dirs = {w.communicate(timeout=300)[0].strip() for w in workers}
    assert all(w.returncode == 0 for w in workers)
    assert len(dirs) == 1
    entry = Path(dirs.pop())
    assert {p.name for p in entry.iterdir()} >= {modules.PROBE, modules.USER,
                                                 modules.USER_BADCRC}
    # the killed build, then exactly one more for the three workers
    assert len(count.read_text().split()) == 2
    assert not list((scratch / "modules").glob(".tmp-*")), "the killed build's leftovers stay"
