"""LAVA jobs: the framing survives LAVA's test shell, plans list what checks type, replays of
recorded job logs are judged by the checks themselves, and a job LAVA failed is never a
kernel verdict unless the kernel's own console says so."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, cast

import pytest

from harness.base.arch import ARCHES
from harness.base.errors import InfraError, KernelFailure
from harness.checks import CHECKS, CheckResult, Verdict, registry
from harness.checks import lto as lto_check
from harness.guest import modules
from harness.kernel import artifacts
from harness.kernel.model import Kernel
from harness.reports import junit
from harness.reports.results import KernelReport
from harness.runs.lava import export, job, plan, verdicts
from harness.runs.lava import log as lavalog
from harness.runs.lava.replay import ReplayGuest, answers

CFI_CMD = "echo CFI_FORWARD_PROTO > /sys/kernel/debug/provoke-crash/DIRECT"


def fake_kernel(tmp_path: Path, *, release: str = "6.1.192", system_map: str = "",
                arch: str = "x86_64") -> Kernel:
    config = tmp_path / ".config"
    config.write_text("CONFIG_LTO_CLANG_THIN=y\n")
    smap = tmp_path / "System.map"
    smap.write_text(system_map)
    return Kernel(arch=arch, lto="thin", release=release, image=tmp_path / "bzImage",
                  config=config, system_map=smap, modules=None, build_dir=tmp_path,
                  source_tree=None, compiler="Debian clang version 19.1.7", linker="LLD",
                  llvm_major=19, source="test", key="k1")


def run_steps(plans: list[plan.CheckPlan]) -> str:
    """The steps as LAVA's run.sh runs them in our guest: busybox sh, and a lava-test-case
    script that evals its --shell argument (lava_test_shell/lava-test-case)."""
    with tempfile.TemporaryDirectory() as d:
        case = Path(d, "lava-test-case")
        case.write_text('#!/usr/bin/env -S busybox sh\nshift; shift; eval "$*"\n')
        case.chmod(0o755)
        # LAVA's run.sh escapes $<digit> in --shell steps (lava_dispatcher testdef.py)
        script = "\n".join(re.sub(r"\$(\d+)\b", r"\\$\1", job.step(p)) for p in plans)
        return subprocess.run(["busybox", "sh", "-c", script], capture_output=True, text=True,
                              check=True, env={**os.environ, "PATH": f"{d}:/usr/bin:/bin"}
                              ).stdout


def test_steps_survive_lava_test_case_quoting() -> None:
    cmds = ["echo 'single' \"double\" $((1 + 2)) \\$HOME", "printf 'a|b\\n'; false",
            "grep -c '[.]llvm[.]' /dev/null"]
    p = plan.CheckPlan("x", tuple(plan.Command(plan.tag("k", "x", i), c)
                                  for i, c in enumerate(cmds)))
    got = answers(run_steps([p]), p.commands)
    assert [a.cmd for a in got] == cmds
    results = [a.result for a in got]
    assert all(r is not None for r in results)
    r0, r1, r2 = cast(list[Any], results)
    assert r0.output == "single double 3 $HOME" and r0.ok
    assert r1.output == "a|b" and r1.status == 1
    assert r2.output == "0" and r2.status == 1


def test_the_kernel_log_after_a_mark_survives_lavas_run_sh() -> None:
    """LAVA rewrites $0 as \\$0 in a --shell step, single quotes or not: awk's program then
    does not parse, and modversions saw no refusal (a real lava-run showed it)."""
    from harness.checks.basic import after_mark

    log = "printf '[ 1.0] old\\n[ 2.0] ltoboot: mark\\n[ 2.1] new\\n'"
    cmd = f"{log} | {after_mark('ltoboot: mark')}"
    p = plan.CheckPlan("x", (plan.Command(plan.tag("k", "x", 0), cmd),))
    got = answers(run_steps([p]), p.commands)
    assert got[0].result is not None and got[0].result.output == "[ 2.1] new"


def test_tags_are_stable_and_apart() -> None:
    assert plan.tag("k", "cfi", 0) == plan.tag("k", "cfi", 0)
    assert len({plan.tag("k", "cfi", 0), plan.tag("k", "cfi", 1), plan.tag("k2", "cfi", 0),
                plan.tag("k", "vdso", 0)}) == 4


def test_recorder_lists_a_checks_commands_in_order(tmp_path: Path) -> None:
    k = fake_kernel(tmp_path)
    cmds, where = plan.recorded("test_module", k, "")
    assert where == "" and cmds[0] == "modprobe test_module" and cmds[-1] == "cat /proc/modules"
    assert len(cmds) == 5
    cmds, where = plan.recorded("cfi", k, "")
    assert (cmds, where) == ([CFI_CMD], "crash")


SYSTEM_MAP = "\n".join([
    "ffffffff81000000 T _stext",
    "ffffffff81000100 t alpha.llvm.111",
    "ffffffff81000200 t beta.llvm.222",
    "ffffffff81000300 t gamma.llvm.333",
]) + "\n"


@pytest.mark.parametrize(("release", "per"), [("6.1.192", 2), ("6.12.117", 3)])
def test_llvm_symbols_plan_has_every_candidate(tmp_path: Path, release: str, per: int) -> None:
    k = fake_kernel(tmp_path, release=release, system_map=SYSTEM_MAP)
    cmds = lto_check.llvm_symbols_plan(k)
    assert cmds[0] == lto_check.COUNT_CMD
    assert len(cmds) == 1 + 3 * per


def replayed(kernel: Kernel, name: str, outputs: dict[str, str], vcpus: int = 1
             ) -> CheckResult:
    """Check `name` judged from a console where each planned command printed outputs[cmd]
    (run for real through sh, framed as in a job)."""
    cmds, _ = plan.recorded(name, kernel, "")
    p = plan.CheckPlan(name, tuple(plan.Command(plan.tag(kernel.key, name, i), c)
                                   for i, c in enumerate(cmds)))
    # the same tags, each command replaced by one that prints its answer
    fake = [plan.CheckPlan(name, tuple(plan.Command(c.tag, "printf '%s' "
                                                    + _q(outputs.get(c.cmd, "")))
                                       for c in p.commands))]
    text = run_steps(fake)
    guest = ReplayGuest(text, [p], log=Path("/dev/null"), label="t", accel="tcg", firmware="",
                        complete=True, vcpus=vcpus)
    return registry.CHECKS[name].run(guest, kernel)


def test_smp_is_judged_from_a_jobs_console_with_the_jobs_vcpus(tmp_path: Path) -> None:
    from harness.checks import smp
    from tests.unit.checks.test_smp import STAT0, STAT1

    k = fake_kernel(tmp_path)
    k.config.write_text("CONFIG_LTO_CLANG_THIN=y\nCONFIG_SMP=y\nCONFIG_ACPI=y\n")
    answers = {smp.ONLINE: "0-1\n", smp.BROUGHT_UP: "[0.3] smp: Brought up 1 node, 2 CPUs\n",
               smp.pinned(0): STAT0, smp.pinned(1): STAT1}
    assert replayed(k, "smp", answers, vcpus=2).verdict is Verdict.PASS
    down = {**answers, smp.ONLINE: "0\n", smp.pinned(1): "taskset: sched_setaffinity: "
            "Invalid argument\n"}
    r = replayed(k, "smp", down, vcpus=2)
    assert r.verdict is Verdict.FAIL and r.summary.startswith("1 of 2 vCPUs online"), r
    # the job's -smp is what the guest had: a job of one vCPU has nothing to bring up
    path = tmp_path / "job.yaml"
    path.write_text("context:\n  extra_options:\n  - -no-reboot\n  - -smp 2\n")
    assert job.Job(k, "", path, (), "").vcpus == 2
    path.write_text("context:\n  extra_options:\n  - -no-reboot\n")
    assert job.Job(k, "", path, (), "").vcpus == 1
    # as QEMU reads -smp: its first number or cpus=, the last one wins, split or not
    for options, want in (("[-smp 2,sockets=1]", 2), ("[-smp cpus=4]", 4),
                          ("[-smp, '3']", 3), ("[-smp 1, -smp 2]", 2), ("null", 1),
                          ("[-smp sockets=2]", 1)):
        path.write_text(f"context:\n  extra_options: {options}\n")
        assert job.Job(k, "", path, (), "").vcpus == want, options
    # an x86_64 kernel without ACPI cannot learn q35's other CPUs: no verdict, and why
    k.config.write_text("CONFIG_LTO_CLANG_THIN=y\nCONFIG_SMP=y\n")
    registry._CONFIGS.clear()
    r = registry.run_check("smp", ReplayGuest("", [], log=path, label="t", accel="tcg",
                                              firmware="", complete=True, vcpus=2), k)
    assert r.verdict is Verdict.SKIP and "without CONFIG_ACPI" in r.summary, r


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def test_replay_finds_the_answers_past_a_failed_candidate(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    monkeypatch.setattr(modules, "probe_modules", lambda kernel: None)
    k = fake_kernel(tmp_path, system_map=SYSTEM_MAP)
    out = {lto_check.COUNT_CMD: "3",
           lto_check.kallsyms_cmd("alpha.llvm.111"): "ffffffff81000100 t alpha.llvm.111",
           lto_check.kallsyms_cmd("beta.llvm.222"): "ffffffff81000200 t beta.llvm.222",
           lto_check.kprobe_cmd("beta"): "[ 1.0] ltoboot_probe: kprobe beta at ffffffff81000200"}
    r = replayed(k, "llvm_symbols", out)
    assert r.passed and "kprobe on beta found beta.llvm.222" in r.summary, r.summary


def test_replay_of_a_kernel_that_lost_the_lookup_fails(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modules, "probe_modules", lambda kernel: None)
    k = fake_kernel(tmp_path, system_map=SYSTEM_MAP)
    r = replayed(k, "llvm_symbols", {lto_check.COUNT_CMD: "3"})
    assert not r.passed and "none could be found by its plain name" in r.summary


def test_recorded_cfi_job_is_judged_by_the_cfi_check(recorded: Path, tmp_path: Path) -> None:
    path = recorded / "lava" / "x86_64-thin-cfi.log"
    parsed = lavalog.parse(path.read_text())
    assert parsed.finished
    tag = re.search(r"BEGIN-(L[0-9a-f]+)", parsed.console)
    assert tag is not None
    p = plan.CheckPlan("cfi", (plan.Command(tag.group(1), CFI_CMD),), "crash")
    crash = ReplayGuest(parsed.console, [p], log=path, label="cfi", accel="tcg", firmware="",
                        complete=True)
    main = ReplayGuest("", [], log=path, label="main", accel="tcg", firmware="", complete=True)
    main.companions["crash"] = crash
    r = CHECKS["cfi"].run(main, fake_kernel(tmp_path))
    assert r.passed, r.summary
    assert r.summary.startswith("CFI failure at lkdtm_indirect_call"), r.summary


def test_a_command_the_job_never_ran(tmp_path: Path) -> None:
    done = ReplayGuest("", [], log=tmp_path / "l", label="j", accel="tcg", firmware="",
                       complete=True)
    with pytest.raises(InfraError, match="did not run 'cat /proc/version'"):
        done.run("cat /proc/version")
    stopped = ReplayGuest("", [], log=tmp_path / "l", label="j", accel="tcg", firmware="",
                          complete=False)
    with pytest.raises(KernelFailure, match="stopped before"):
        stopped.run("cat /proc/version")


def _report(recorded: Path, tmp_path: Path, name: str) -> KernelReport:
    k = fake_kernel(tmp_path)
    j = job.Job(k, "", tmp_path / "job.yaml", (), "")
    return verdicts.kernel_report(k, [j], {j: recorded / "lava" / name}, ["proc_version"])


def test_a_kernel_panic_in_a_lava_boot_is_the_kernels(recorded: Path, tmp_path: Path) -> None:
    rep = _report(recorded, tmp_path, "x86_64-boot-panic.log")
    assert not rep.passed
    assert rep.error.startswith("boot failed: panic: Kernel panic - not syncing: Requested "
                                "init /nonexistent failed"), rep.error


def test_a_job_lava_could_not_run_is_no_verdict(recorded: Path, tmp_path: Path) -> None:
    with pytest.raises(InfraError) as e:
        _report(recorded, tmp_path, "x86_64-missing-kernel.log")
    assert "Image file '/nonexistent/bzImage' does not exist" in str(e.value)
    assert "\n" not in str(e.value)


def test_job_definition_boots_like_our_argv() -> None:
    x86 = job.context(ARCHES["x86_64"], False)
    assert x86["no_kvm"] is True and "-machine q35" in x86["extra_options"]
    arm = job.context(ARCHES["arm64"], True)
    assert arm["machine"] == "virt,virtualization=on,acpi=off" and arm["cpu"] == "max"
    assert job.context(ARCHES["arm64"], False)["machine"] == "virt,virtualization=on"
    d = job.definition(name="n", arch=ARCHES["arm64"], kernel_url="https://x/Image",
                       initrd_url="https://x/i.cpio", firmware_url="https://x/QEMU_EFI.fd",
                       plans=[], metadata={})
    images = d["actions"][0]["deploy"]["images"]
    assert "panic=-1" not in images["kernel"]["image_arg"]
    assert "console=ttyAMA0" in images["kernel"]["image_arg"]
    assert images["ramdisk"]["overlays"] == {"lava": True}
    # the firmware comes with the job: a lab's worker needs none of its own
    assert images["firmware"] == {"url": "https://x/QEMU_EFI.fd", "image_arg": "-bios {firmware}"}
    assert d["context"]["machine"].endswith(",acpi=off")


@pytest.mark.skipif(not Path(export.SYSTEM_PYTHON).is_file(), reason="no Debian python3")
def test_job_passes_lavas_strict_schema(tmp_path: Path) -> None:
    p = plan.CheckPlan("proc_version", (plan.Command("Labc", "cat /proc/version"),))
    d = job.definition(name="n", arch=ARCHES["x86_64"], kernel_url="https://x/bzImage",
                       initrd_url="https://x/i.cpio", firmware_url="", plans=[p], metadata={})
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    import yaml
    good.write_text(yaml.safe_dump(d))
    if not export.validate([good]):
        pytest.skip("lava_common is not installed (apt-get install lava-dispatcher)")
    d["actions"][0]["deploy"]["images"]["kernel"]["no_such_key"] = 1
    bad.write_text(yaml.safe_dump(d))
    with pytest.raises(InfraError, match="fails LAVA's schema"):
        export.validate([bad])


def test_artifact_url_must_be_http() -> None:
    assert export.artifact_base("https://lab.example/x") == "https://lab.example/x/"
    for bad in ("file:///etc", "ftp://h/x", "https://", "../x"):
        with pytest.raises(Exception, match="not an http"):
            export.artifact_base(bad)


def test_junit_has_a_case_per_check_and_reasons(tmp_path: Path) -> None:
    reps = [KernelReport("a", results=[CheckResult("p", True, "ok"),
                                       CheckResult("s", True, "skipped: why", skipped=True),
                                       CheckResult("f", False, "broken", "evidence")]),
            KernelReport("b", error="build failed: x")]
    path = tmp_path / "j.xml"
    junit.write(reps, path)
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite")
    assert [s.get("failures") for s in suites] == ["1", "1"]
    skipped = suites[0].find("testcase[@name='s']/skipped")
    failure = suites[0].find("testcase[@name='f']/failure")
    assert skipped is not None and skipped.get("message") == "skipped: why"
    assert failure is not None and failure.text == "evidence"


def test_no_lava_run_without_the_dispatcher(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runs.lava import local
    if shutil.which("lava-run") is None:
        monkeypatch.setattr("os.geteuid", lambda: 0)
        with pytest.raises(InfraError, match="apt-get install lava-dispatcher"):
            local.require()
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(Exception, match="must run as root"):
        local.require()


def test_server_urls_and_tokens(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.runs.lava import server
    assert server.base_url("https://lava.example.org") == "https://lava.example.org/"
    assert server.base_url("https://lava.example.org/RPC2") == "https://lava.example.org/"
    assert server.base_url("http://h:8000/lava/api/v0.2/") == "http://h:8000/lava/"
    with pytest.raises(Exception, match="not an http"):
        server.base_url("lava.example.org")
    config = tmp_path / "lavacli.yaml"
    config.write_text("default:\n  uri: https://h/RPC2\n  username: u\n  token: t1\n"
                      "lab:\n  uri: https://l/RPC2\n  token: t2\n")
    monkeypatch.delenv("LAVA_TOKEN", raising=False)
    assert server.token("default", config) == "t1"
    assert server.token("lab", config) == "t2"
    assert server.token("nope", config) is None
    monkeypatch.setenv("LAVA_TOKEN", "env")
    assert server.token("lab", config) == "env"


def test_an_unreachable_server_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.base import retry
    from harness.runs.lava import server
    monkeypatch.setattr(server, "RETRY", retry.Policy(attempts=5, backoff=0.0, backoff_max=0.0))
    s = server.Server.connect("http://127.0.0.1:9/", "t")
    with pytest.raises(InfraError, match=r"http://127.0.0.1:9/ is unreachable \(.*5 tries"):
        s.version()


def test_a_job_with_nothing_to_type_still_boots_and_tests() -> None:
    p = plan.Plan("k", [plan.CheckPlan("cfi", (plan.Command("Lx", CFI_CMD),), "crash"),
                        plan.CheckPlan("build_outputs", ())])
    assert p.jobs() == ["", "cfi"]  # the main job boots even when only a crash check types
    d = job.definition(name="n", arch=ARCHES["x86_64"], kernel_url="https://x/bzImage",
                       initrd_url="https://x/i.cpio", firmware_url="", plans=[], metadata={})
    steps = d["actions"][2]["test"]["definitions"][0]["repository"]["run"]["steps"]
    assert steps == [job.BOOTED]  # LAVA's overlay fails without a test ("nothing to open")


def test_export_refuses_a_directory_with_something_in_it(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="not an empty directory"):
        export.export([], tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_server_logs_parse_like_lava_run_output(recorded: Path) -> None:
    """A server gives the log as a YAML list ("- {...}" lines); lava-run prints the same
    mappings one per line; both have YAML's non-specific tags (`! "372"`)."""
    text = (recorded / "lava" / "x86_64-thin-cfi.log").read_text()
    plain, listed = lavalog.parse(text), lavalog.parse(
        "".join(f"- {line}\n" for line in text.splitlines()))
    assert plain.console == listed.console and plain.results == listed.results
    assert '! "' in text  # the tagged values are there, and read
    case = plain.result("cfi", "0_ltoboot")
    assert case is not None and str(case["starttc"]).isdigit()
    assert plain.finished and plain.seconds_to("LTOBOOT-READY") is not None


def _booted(tmp_path: Path, k: Kernel, banner: str) -> str:
    cmd = plan.identity_command(k.key)
    shown = plan.CheckPlan("x", (plan.Command(cmd.tag, f"echo '{banner}'"),))
    return run_steps([shown])


def test_the_booted_kernel_must_be_the_exported_one(tmp_path: Path) -> None:
    """The main job's first step prints /proc/version; the replay compares its release and
    build (UTS_VERSION) with the exported image's: another kernel is an infrastructure error
    naming both, never a verdict."""
    from tests.synthetic import x86

    k = fake_kernel(tmp_path)
    k.image.write_bytes(x86())  # its version string: "6.1.192 (ltoboot@ltoboot) #1"
    j = job.Job(k, "", tmp_path / "job.yaml", (), "")
    same = _booted(tmp_path, k, "Linux version 6.1.192 (ltoboot@ltoboot) (clang) #1")
    verdicts.booted_is_exported(k, j, same, tmp_path / "log")
    other = _booted(tmp_path, k, "Linux version 6.1.192 (ltoboot@ltoboot) (clang) #2")
    with pytest.raises(InfraError, match=r"booted another kernel than the one exported: "
                       r"'Linux version 6\.1\.192 .* #2', not 6\.1\.192 '#1'"):
        verdicts.booted_is_exported(k, j, other, tmp_path / "log")
    with pytest.raises(InfraError, match="did not say which kernel it booted"):
        verdicts.booted_is_exported(k, j, "", tmp_path / "log")


def test_every_deployed_file_is_pinned_by_its_sha256() -> None:
    sums = {"kernel": "a" * 64, "ramdisk": "b" * 64, "firmware": "c" * 64}
    d = job.definition(name="n", arch=ARCHES["arm64"], kernel_url="https://x/Image",
                       initrd_url="https://x/i.cpio", firmware_url="https://x/QEMU_EFI.fd",
                       plans=[], metadata={}, sha256=sums)
    images = d["actions"][0]["deploy"]["images"]
    assert {k: v["sha256sum"] for k, v in images.items()} == sums


def test_names_from_system_map_are_quoted_in_guest_commands() -> None:
    import shlex

    evil = "x;reboot -f $(id)"
    assert shlex.split(lto_check.kallsyms_cmd(evil)) == ["grep", "-F", f" {evil}",
                                                         lto_check.LLVM_NAMES]
    words = shlex.split(lto_check.kprobe_cmd(evil))
    assert f"lookup={evil}" in words and f"kprobe {evil} at" in words
    # ordinary names are typed as they are, unquoted
    assert lto_check.kallsyms_cmd("a.llvm.1") == \
        "grep -F ' a.llvm.1' /tmp/ltoboot-llvm-names"


def test_a_kernel_built_again_under_its_key_is_exported_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pruned build made again has the same key but other bytes (its build time is in
    them): the export made of the first must not be served for the second."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    k = fake_kernel(tmp_path)
    k.image.write_bytes(b"first build #1 03:50")
    first = artifacts.export(k)
    time.sleep(0.01)
    k.image.unlink()  # the entry pruned and built again: a new file
    k.image.write_bytes(b"again build #1 05:09")
    again = artifacts.export(k)
    assert again != first and (again / "bzImage").read_bytes() == b"again build #1 05:09"


def test_a_job_types_the_in_tree_module_load(tmp_path: Path) -> None:
    """A kernel that installed an in-tree module besides test_module: the recorded plan has
    the command that loads it (the recorder's empty answers must not cut the check short: the
    job would lack it, and the replay of a passing kernel stop on the missing answer)."""
    import dataclasses

    from harness.checks import basic

    k = fake_kernel(tmp_path)
    order = tmp_path / "mods/lib/modules/6.1.192/modules.order"
    order.parent.mkdir(parents=True)
    order.write_text("kernel/lib/test_module.ko\nkernel/fs/efivarfs/efivarfs.ko\n")
    k = dataclasses.replace(k, modules=tmp_path / "mods")
    cmds, _ = plan.recorded("test_module", k, "")
    load = basic.load_one_command(["efivarfs"])
    assert load in cmds
    assert cmds.index(load) == len(cmds) - 1  # after test_module's own, whatever they said
