"""The checks as LAVA jobs, run for real by LAVA's dispatcher (lava-run) on our cached kernels:
the same verdicts as our own boot on both arches, and broken kernels fail through LAVA too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.base import cache
from harness.checks import CHECKS, run_checks
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel.model import Kernel
from harness.kernel.variants import build_variant
from harness.reports.results import KernelReport
from harness.runs.lava import export, local, verdicts

pytestmark = [
    pytest.mark.boot,
    pytest.mark.skipif(shutil.which("lava-run") is None or os.geteuid() != 0,
                       reason="needs lava-dispatcher (./setup.sh installs it) and root"),
]


def lava_reports(kernels: list[Kernel], tmp_path: Path,
                 names: list[str] | None = None) -> list[KernelReport]:
    names = names or list(CHECKS)
    jobs = export.export(kernels, tmp_path / "jobs", names=names)
    logs = local.run(jobs, parallel=2)
    return [verdicts.kernel_report(k, [j for j in jobs if j.kernel is k], logs, names)
            for k in kernels]


# Each in its kernel's group: our own verdicts come from the guest and crash companion that
# group has booted anyway. The other tests are one group (one after another on one worker):
# LAVA jobs of these two may run beside them, and each test looks for its own processes only.
LAVA = pytest.mark.xdist_group("lava")


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.ltoboot_group(arch=a))
                                  for a in ("x86_64", "arm64")])
def test_lava_gives_the_verdicts_of_our_own_boot(arch: str, kernels: Kernels, guests: Guests,
                                                  tmp_path: Path) -> None:
    kernel = kernels.get(arch=arch)
    (rep,) = lava_reports([kernel], tmp_path)
    ours = run_checks(guests.get(kernel), kernel)
    assert [(r.name, r.verdict) for r in rep.results] == [(r.name, r.verdict) for r in ours]
    assert rep.passed, "\n".join(f"{r.verdict} {r.name}: {r.summary}" for r in rep.results)
    assert rep.boot_seconds is not None and rep.console_log.endswith(".log")
    by_name = {r.name: r for r in rep.results}
    assert "clang version" in by_name["proc_version"].evidence
    assert by_name["cfi"].summary.startswith("CFI failure at")  # its own job, crashed on purpose


@LAVA
def test_broken_kernels_fail_through_lava(kernels: Kernels, primary_arch: str,
                                          tmp_path: Path) -> None:
    base = kernels.get(arch=primary_arch)
    unchecked = build_variant(base, "versions-unchecked")  # modversions: main job
    executable = build_variant(base, "rodata-executable")  # lkdtm_rodata: a crash job
    # the two checks alone: each kernel's main job and its LKDTM crash job (one kernel when
    # the two variants share one: 2 jobs)
    broken = list({k.key: k for k in (unchecked, executable)}.values())
    reps = {k.key: rep for k, rep in zip(broken, lava_reports(
        broken, tmp_path, ["modversions", "lkdtm_rodata"]), strict=True)}
    failed = {key: {r.name for r in rep.results if not r.passed} for key, rep in reps.items()}
    assert "modversions" in failed[unchecked.key], reps[unchecked.key].results
    assert "lkdtm_rodata" in failed[executable.key], reps[executable.key].results
    lkdtm = next(r for r in reps[executable.key].results if r.name == "lkdtm_rodata")
    assert "rodata is executable" in lkdtm.summary


@LAVA
def test_lava_run_command_report_junit_and_status(kernels: Kernels, primary_arch: str,
                                                  tmp_path: Path) -> None:
    kernels.get(arch=primary_arch)  # built by the session (the command finds it cached)
    xml, kcidb_doc = tmp_path / "lava.xml", tmp_path / "kcidb.json"
    p = subprocess.Popen([sys.executable, "-m", "harness.faces.cli", "lava", "run", "--arch",
                          primary_arch, "--check", "proc_version", "--check", "cfi",
                          "--junit", str(xml), "--kcidb", str(kcidb_doc)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "LTOBOOT_CACHE": str(cache.cache_root())})
    out, err = p.communicate(timeout=600)
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "PASS  proc_version" in r.stdout and "PASS  cfi" in r.stdout
    assert r.stdout.rstrip().splitlines()[-1] == f"ltoboot: all passed: {primary_arch}-thin ok"
    cases = ET.parse(xml).getroot().findall("testsuite/testcase")
    assert [c.get("name") for c in cases] == ["proc_version", "cfi"]
    doc = json.loads(kcidb_doc.read_text())  # written: KernelCI's schema accepted it
    assert [(t["path"], t["status"]) for t in doc["tests"]] == [
        ("boot", "PASS"), ("ltoboot.proc_version", "PASS"), ("ltoboot.cfi", "PASS")]
    scratch = cache.scratch_root()
    assert not [d for d in scratch.iterdir() if d.name.startswith(f"lava-{p.pid}-")], \
        "lava run left its scratch directories"  # (other tests' jobs may run meanwhile)


def _lava_processes() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "/dispatcher/tmp/" in text or text.startswith("lava-run"):
            found.append(text)
    return found


@LAVA
def test_interrupted_lava_run_leaves_no_lava_run_or_qemu(kernels: Kernels, primary_arch: str
                                                         ) -> None:
    kernels.get(arch=primary_arch)
    p = subprocess.Popen([sys.executable, "-m", "harness.faces.cli", "lava", "run", "--arch",
                          primary_arch, "--check", "proc_version", "--check", "cfi"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "LTOBOOT_CACHE": str(cache.cache_root())})
    try:
        deadline = time.monotonic() + 120
        mine = str(p.pid)  # its jobs' ids begin with it: other tests' jobs may run too
        while not any("qemu-system" in c and f"tmp/{mine}" in c for c in _lava_processes()):
            assert p.poll() is None and time.monotonic() < deadline, "no LAVA QEMU started"
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert p.wait(timeout=30) == 130
        assert time.monotonic() - started < 15
        assert "interrupted" in (p.stderr.read() if p.stderr else "")
    finally:
        if p.poll() is None:
            p.kill()
    # ours are gone when no job of this process's id prefix is left
    assert not [c for c in _lava_processes() if f"tmp/{mine}" in c or f"job: {mine}" in c]


@LAVA
def test_an_exported_folder_is_a_prebuilt_kernel_lava_checks_too(kernels: Kernels,
                                                                 primary_arch: str,
                                                                 tmp_path: Path) -> None:
    """The export folder is TuxMake's layout: the kernel read back from it (no build
    directory, as from someone else's build) passes through LAVA, what needs the build
    directory SKIPs with the reason."""
    from harness.kernel import prebuilt
    from harness.kernel.model import BuildSpec
    jobs = export.export([kernels.get(arch=primary_arch)], tmp_path / "first",
                         names=["proc_version"])
    folder = jobs[0].path.parent
    assert {"config", "System.map", "modules.tar.xz", "metadata.json"} <= \
        {p.name for p in folder.iterdir()}
    theirs = prebuilt.resolve(BuildSpec(arch=primary_arch, prebuilt=str(folder)))
    assert theirs.build_dir is None
    # what a prebuilt kernel changes: the build directory's checks; one job (no crash job)
    names = ["proc_version", "lto_config", "test_module", "probe_modules", "modversions"]
    (rep,) = lava_reports([theirs], tmp_path / "again", names)
    assert rep.passed, [(r.name, r.verdict, r.summary) for r in rep.results]
    assert [r.name for r in rep.results] == names
    probe = next(r for r in rep.results if r.name == "probe_modules")
    assert probe.skipped and "build directory" in probe.summary


@LAVA
def test_a_job_boots_exactly_what_was_exported(kernels: Kernels, primary_arch: str,
                                               tmp_path: Path) -> None:
    """file:// URLs LAVA opens (a space and non-ASCII in the path), the folder named by the
    kernel's key, and every deployed file pinned by its sha256sum: a file changed after the
    export is refused by LAVA itself, and that is no verdict on the kernel."""
    from harness.base.arch import get_arch
    from harness.base.errors import InfraError

    kernel = kernels.get(arch=primary_arch)
    jobs = export.export([kernel], tmp_path / "lab dir Jörg" / "jobs", names=["proc_version"])
    folder = jobs[0].path.parent
    assert folder.name.endswith(kernel.key)
    images = jobs[0].definition()["actions"][0]["deploy"]["images"]
    assert all(len(i["sha256sum"]) == 64 for i in images.values()), images
    (rep,) = [verdicts.kernel_report(kernel, jobs, local.run(jobs, parallel=1),
                                     ["proc_version"])]
    assert rep.passed, [(r.name, r.verdict, r.summary) for r in rep.results]
    image = folder / Path(get_arch(primary_arch).image).name
    data = bytearray(image.read_bytes())
    data[-1] ^= 1  # another kernel's file at the same URL, as far as LAVA can tell
    image.write_bytes(bytes(data))
    logs = local.run(jobs, parallel=1)
    with pytest.raises(InfraError, match="sha256") as e:
        verdicts.kernel_report(kernel, jobs, logs, ["proc_version"])
    assert "\n" not in str(e.value)
