"""Fault tests: the harness never leaves QEMU behind and reports failures fast and clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from harness.base.errors import InfraError, KernelFailure
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.guest import boot
from harness.guest.session import Guest
from harness.kernel import toolchain
from tests.processes import default_sigint, wait_for


def _qemu_with(token: str) -> list[str]:
    got = subprocess.run(["pgrep", "-f", token], capture_output=True, text=True)
    return got.stdout.split()


def test_panic_is_reported_when_it_happens_not_at_the_timeout(recorded: Path,
                                                              tmp_path: Path) -> None:
    log = recorded / "x86_64-panic-no-init.log"
    g = Guest(["sh", "-c", f"cat {log}; sleep 60"], tmp_path / "c.log", label="t",
              accel="tcg", timeout_scale=1.0)
    started = time.monotonic()
    with pytest.raises(KernelFailure) as e:
        g.wait_ready(30)
    assert e.value.kind == "panic"
    assert time.monotonic() - started < 1.5  # the panic line, plus at most 1 s of draining
    assert not g.child.isalive()


def test_hung_console_fails_at_the_timeout_with_its_last_lines(tmp_path: Path) -> None:
    g = Guest(["sh", "-c", "echo Run /init as init process; echo still here; sleep 60"],
              tmp_path / "h.log", label="t", accel="tcg", timeout_scale=1.0)
    started = time.monotonic()
    with pytest.raises(KernelFailure) as e:
        g.wait_ready(1.0)
    assert 1.0 <= time.monotonic() - started < 2.5
    assert e.value.kind == "hang" and "still here" in e.value.excerpt
    assert not g.child.isalive()


def test_missing_tools_are_named_with_their_package() -> None:
    with pytest.raises(InfraError) as e:
        toolchain.detect("99")
    assert "clang-99" in str(e.value) and "apt-get install clang-99 lld-99 llvm-99" in str(e.value)


# -- real guests -------------------------------------------------------------------------------
@pytest.mark.boot
def test_hung_init_fails_at_the_timeout(kernels: Kernels, primary_arch: str,
                                        tmp_path: Path) -> None:
    init = tmp_path / "init"
    init.write_text("#!/bin/busybox sh\n/bin/busybox echo ltoboot: init hangs\n"
                    "exec /bin/busybox sleep 100000\n")
    started = time.monotonic()
    with pytest.raises(KernelFailure) as e:
        boot.boot(boot.BootRequest(kernels.get(arch=primary_arch), init=init, timeout=8,
                                   label="hang-test")).close()
    assert e.value.kind == "hang"
    assert 8 <= time.monotonic() - started < 20
    assert "ltoboot: init hangs" in e.value.excerpt


@pytest.mark.boot
@pytest.mark.ltoboot_group()
def test_printk_storm_and_invalid_utf8_do_not_break_the_console(
        kernels: Kernels, guests: Guests, primary_arch: str) -> None:
    guest = guests.boot(kernels.get(arch=primary_arch), label="storm-test")
    storm = ("i=0; while [ $i -lt 300 ]; do echo \"<3>ltoboot storm $i\" > /dev/kmsg; "
             "i=$((i+1)); done; echo done")
    r = guest.run(storm, timeout=60)
    assert r.ok and r.output == "done"
    assert len([k for k in r.kernel_lines if "ltoboot storm" in k]) >= 250
    junk = guest.run(r"printf 'a\377\376b\n'; echo after")
    assert junk.output.splitlines() == ["a\ufffd\ufffdb", "after"]
    assert guest.run("echo still fine").output == "still fine"


LINGER = '''
from harness.guest import boot
from harness.kernel.model import BuildSpec
from harness.kernel.obtain import obtain
import time
def test_linger():
    g = boot.boot(boot.BootRequest(obtain(BuildSpec(arch={arch!r})), accel_mode="tcg",
                                   extra_cmdline=["ltoboot.token={token}"]))
    open({ready!r}, "w").write("booted")
    time.sleep(600)
'''


@pytest.mark.boot
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL", "worker-SIGKILL"])
def test_qemu_never_outlives_pytest(how: str, kernels: Kernels, primary_arch: str,
                                    tmp_path: Path) -> None:
    kernels.get(arch=primary_arch)  # built before the child pytest needs it
    token = uuid.uuid4().hex
    ready = tmp_path / "ready"
    (tmp_path / "test_linger.py").write_text(textwrap.dedent(LINGER).format(
        arch=primary_arch, token=token, ready=str(ready)))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "-o", "addopts=", str(tmp_path / "test_linger.py")]
    if how == "worker-SIGKILL":
        argv += ["-n", "1"]
    out = (tmp_path / "child.log").open("w")
    # a suite started in the background of a non-interactive shell inherits SIGINT ignored,
    # and so would this pytest: give it the disposition an interactive pytest has
    child = subprocess.Popen(argv, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True, preexec_fn=default_sigint)
    try:
        assert wait_for(ready.exists, 120), "the child never booted its guest"
        assert _qemu_with(token), "no QEMU to watch"
        if how == "worker-SIGKILL":
            workers = subprocess.run(["pgrep", "-P", str(child.pid)], capture_output=True,
                                     text=True).stdout.split()
            assert workers
            for w in workers:
                os.kill(int(w), signal.SIGKILL)
        else:
            child.send_signal(getattr(signal, how))
        assert wait_for(lambda: not _qemu_with(token), 45), \
            f"QEMU outlived pytest after {how}: {_qemu_with(token)}; child pytest " \
            f"{'still running' if child.poll() is None else f'exited {child.returncode}'}" \
            f"; its output:\n{(tmp_path / 'child.log').read_text()[-2000:]}"
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        out.close()
        for pid in _qemu_with(token):
            os.kill(int(pid), signal.SIGKILL)


ENDING = '''
import subprocess
import pytest
from harness.guest import boot
from harness.kernel.model import BuildSpec
from harness.kernel.obtain import obtain
from harness.base.errors import KernelFailure
K = obtain(BuildSpec(arch={arch!r}))
TOKEN = ["ltoboot.token={token}"]
def qemu_left():
    return subprocess.run(["pgrep", "-f", {token!r}], capture_output=True).stdout
def test_ending(tmp_path):
    how = {how!r}
    if how == "pass":
        assert boot.boot(boot.BootRequest(K, extra_cmdline=TOKEN)).run("true").ok
    elif how == "failed-check":
        assert boot.boot(boot.BootRequest(K, extra_cmdline=TOKEN)).run("false").ok
    elif how == "boot-timeout":
        init = tmp_path / "init"
        init.write_text("#!/bin/busybox sh\\nexec /bin/busybox sleep 100000\\n")
        with pytest.raises(KernelFailure):
            boot.boot(boot.BootRequest(K, init=init, timeout=5, extra_cmdline=TOKEN))
        assert not qemu_left()  # gone at the failure, not only at exit
    elif how == "panic":
        with pytest.raises(KernelFailure):
            boot.boot(boot.BootRequest(K, extra_cmdline=[*TOKEN, "rdinit=/nonexistent",
                                                         "init=/nonexistent"]))
        assert not qemu_left()
'''


@pytest.mark.boot
@pytest.mark.parametrize("how, exit_code", [("pass", 0), ("failed-check", 1),
                                            ("boot-timeout", 0), ("panic", 0)])
def test_no_qemu_left_after_a_run_ends(how: str, exit_code: int, kernels: Kernels,
                                       primary_arch: str, tmp_path: Path) -> None:
    kernels.get(arch=primary_arch)
    token = uuid.uuid4().hex
    (tmp_path / "test_ending.py").write_text(textwrap.dedent(ENDING).format(
        arch=primary_arch, token=token, how=how))
    got = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-o", "addopts=", str(tmp_path / "test_ending.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=180)
    try:
        assert got.returncode == exit_code, got.stdout[-3000:]
        assert wait_for(lambda: not _qemu_with(token), 5), \
            f"QEMU outlived a run ending in {how}: {_qemu_with(token)}"
    finally:
        for pid in _qemu_with(token):
            os.kill(int(pid), signal.SIGKILL)
