"""ltoboot's benchmark: what the harness costs on top of QEMU, make and pytest, side by side.

    .venv/bin/python bench/bench.py [--runs 5] [--arch x86_64,arm64] [--only boot,checks,...]
                                    [--suite-runs N] [--json bench.json]

Sections (median of --runs each; the suite of --suite-runs, default --runs):
  boot    raw QEMU to our init's ready marker vs the harness's boot to a usable shell: same
          kernel, initramfs and argv (target ratio <= 1.10)
  vcpus   raw QEMU to the ready marker with -smp 1 and with -smp 2 (what every guest gets),
          alternately: what the second vCPU costs a boot on these cores
  checks  all checks of one kernel on one booted guest: time beyond the boot, per check (the
          ones that crash the kernel last, on the same guest, as in a run)
  run     a warm `ltoboot run` (both arches, every check), end to end, as a user types it
  lava    the same as LAVA jobs, `ltoboot lava run` (lava-run; root): what LAVA adds
  build   plain `make M=... modules` of our probe modules vs the harness building the same
          key into a scratch cache (target 1.00); a kernel build is the same code path
          (cache.publish + make), minutes long: --kernel-build adds one pair of those
  cache   a cache hit of the default kernel: milliseconds, and no make started
  suite   warm `pytest -n auto` vs `pytest -n 1` of the whole suite (xdist speed-up)
  start   what a Python process of ours costs before it does anything: `ltoboot --help`, and
          `b4 --version` (tested-by --series); the suite starts a hundred of them
Minutes to hours each, only when named in --only (one run each):
  ccache  the default x86_64 kernel in a scratch cache: a cold ccache, then again after its
          cache entry is removed (a warm ccache), then with one option more
  series  a 2-patch series (one C file, one Makefile line) on a repository of the default
          tree, after the default kernel was built; then its v2 (starting from v1's build),
          and v2 again from nothing (LTOBOOT_INCREMENTAL=0); the series are new each time
  cold    `pytest -n auto` with an empty cache, and the cache's size after it
  defconfig  x86_64 `--config defconfig`: its build (as the cache recorded it, or made now:
          26-60 minutes), its boot, and a warm `ltoboot run` of it (docs/run.md)
Kernels come from the cache (built first if missing). Under TCG here: see the accel verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import checks
from harness.base import cache
from harness.base.arch import get_arch
from harness.guest import boot, modules, qemu
from harness.guest.initramfs import build_initramfs
from harness.guest.protocol import GuestProtocol
from harness.kernel import kbuild, toolchain
from harness.kernel.build import build_kernel
from harness.kernel.model import BuildSpec, Kernel
from harness.kernel.obtain import obtain

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("boot", "vcpus", "checks", "run", "lava", "build", "cache", "suite", "start")
LONG = ("ccache", "series", "cold", "defconfig")


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    got = [measure() for _ in range(runs)]
    return statistics.median(got), got


def raw_boot(argv: list[str]) -> float:
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    seen = b""
    try:
        while b"LTOBOOT-READY" not in seen:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("QEMU exited before the ready marker")
            seen = seen[-64:] + chunk
        return time.monotonic() - started
    finally:
        proc.kill()
        proc.wait()


def bench_boot(kernel: Kernel, runs: int) -> dict[str, Any]:
    initrd = build_initramfs(kernel, None, boot.guest_files(kernel))
    arch = get_arch(kernel.arch)
    firmware = boot.default_firmware(kernel)  # the same way in: UEFI for arm64
    argv = qemu.qemu_argv(arch, kernel.image, initrd, qemu.kernel_cmdline(arch),
                          firmware=firmware)

    def harness() -> float:
        t = time.monotonic()
        guest = boot.start(kernel, "tcg", initrd=initrd, extra_cmdline=(), firmware=firmware)
        elapsed = time.monotonic() - t
        guest.close()
        return elapsed

    raw, raw_all = median_of(runs, lambda: raw_boot(argv))
    ours, ours_all = median_of(runs, harness)
    return {"raw_s": raw, "harness_s": ours, "ratio": ours / raw, "raw_runs": raw_all,
            "harness_runs": ours_all}


def bench_vcpus(kernel: Kernel, runs: int) -> dict[str, Any]:
    initrd = build_initramfs(kernel, None, boot.guest_files(kernel))
    arch = get_arch(kernel.arch)
    firmware = boot.default_firmware(kernel)
    argv = {n: qemu.qemu_argv(arch, kernel.image, initrd, qemu.kernel_cmdline(arch),
                              firmware=firmware, smp=n) for n in (1, 2)}
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(runs):  # alternately: the machine's load drifts alike for both
        for n in (1, 2):
            times[n].append(raw_boot(argv[n]))
    one, two = statistics.median(times[1]), statistics.median(times[2])
    return {"smp1_s": one, "smp2_s": two, "ratio": two / one, "smp1_runs": times[1],
            "smp2_runs": times[2]}


def bench_checks(kernel: Kernel, runs: int) -> dict[str, Any]:
    per_check: dict[str, list[float]] = {}

    def timed(check: checks.Check) -> checks.Check:
        def run(guest: GuestProtocol, kernel: Kernel) -> checks.CheckResult:
            c = time.monotonic()
            try:
                return check.run(guest, kernel)
            finally:
                per_check.setdefault(check.name, []).append(time.monotonic() - c)
        return dataclasses.replace(check, run=run)

    def once() -> float:
        guest = boot.boot(boot.BootRequest(kernel, accel_mode="tcg"))
        t = time.monotonic()
        results = checks.run_checks(guest, kernel, last_use=True)  # as a run has them
        elapsed = time.monotonic() - t
        guest.close()
        for r in results:
            if not r.passed:
                raise RuntimeError(f"{kernel.label}: {r.name} failed: {r.summary}")
        return elapsed

    plain = dict(checks.CHECKS)
    checks.CHECKS.update({n: timed(c) for n, c in plain.items()})
    try:
        total, all_runs = median_of(runs, once)
    finally:
        checks.CHECKS.update(plain)
    return {"checks": len(checks.CHECKS), "beyond_boot_s": total, "runs": all_runs,
            "per_check_s": {n: statistics.median(v) for n, v in per_check.items()}}


def _scratch_env(scratch: Path) -> dict[str, str]:
    return {**os.environ, "LTOBOOT_CACHE": str(scratch)}


def bench_module_build(kernel: Kernel, runs: int) -> dict[str, Any]:
    assert kernel.build_dir is not None and kernel.source_tree is not None
    tree, out = kernel.source_tree, kernel.build_dir
    meta = kernel.to_json(out)
    code = ("import sys; from pathlib import Path; from harness.kernel.model import Kernel; "
            "from harness.guest import modules; modules.probe_modules(Kernel.from_json("
            "sys.stdin.read(), Path(sys.argv[1])))")

    def plain() -> float:
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(modules.SOURCES, src)
            argv = kbuild.make_argv(tree, out,
                                    get_arch(kernel.arch), toolchain.of_kernel(kernel),
                                    ["modules"], module_dir=src)
            t = time.monotonic()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            return time.monotonic() - t

    def harness() -> float:  # a fresh process and cache each time, as a cold CI has
        with tempfile.TemporaryDirectory() as tmp:
            t = time.monotonic()
            subprocess.run([sys.executable, "-c", code, str(kernel.build_dir)], input=meta,
                           text=True, check=True, env=_scratch_env(Path(tmp)),
                           stderr=subprocess.DEVNULL)
            return time.monotonic() - t

    p, p_all = median_of(runs, plain)
    h, h_all = median_of(runs, harness)
    return {"what": "probe modules (M=)", "plain_make_s": p, "harness_s": h, "ratio": h / p,
            "plain_runs": p_all, "harness_runs": h_all}


def bench_kernel_build(spec: BuildSpec) -> dict[str, Any]:
    """One plain `make` of the harness's config vs one harness build, both from scratch."""
    kernel = obtain(spec)
    assert kernel.source_tree is not None
    with tempfile.TemporaryDirectory(dir=cache.cache_root()) as tmp:  # not in the src entry
        out = Path(tmp) / "o"
        out.mkdir()
        shutil.copy(kernel.config, out / ".config")
        arch, llvm = get_arch(kernel.arch), toolchain.of_kernel(kernel)
        t = time.monotonic()
        for targets in (["olddefconfig"], []):
            subprocess.run(kbuild.make_argv(kernel.source_tree, out, arch, llvm, targets,
                                            jobs=kbuild.jobs()),
                           check=True, stdout=subprocess.DEVNULL)
        plain = time.monotonic() - t
    with tempfile.TemporaryDirectory() as tmp:
        code = ("from harness.kernel.model import BuildSpec; "
                "from harness.kernel.obtain import obtain; "
                f"obtain(BuildSpec(arch={spec.arch!r}, lto={spec.lto!r}))")
        t = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True, env=_scratch_env(Path(tmp)))
        harness = time.monotonic() - t  # includes unpacking the tarball, as a cold run has
    return {"what": f"{spec.label} kernel", "plain_make_s": plain, "harness_s": harness,
            "ratio": harness / plain}


def bench_cache_hit(spec: BuildSpec, runs: int) -> dict[str, Any]:
    obtain(spec)
    with tempfile.TemporaryDirectory() as tmp:  # a make on PATH that records being started
        spy, log = Path(tmp) / "make", Path(tmp) / "started"
        spy.write_text(f"#!/bin/sh\necho started >> {log}\nexit 1\n")
        spy.chmod(0o755)
        path = os.environ["PATH"]
        os.environ["PATH"] = f"{tmp}:{path}"
        try:
            def hit() -> float:
                t = time.perf_counter()
                obtain(spec)
                return time.perf_counter() - t

            m, all_runs = median_of(runs, hit)
        finally:
            os.environ["PATH"] = path
        makes = len(log.read_text().splitlines()) if log.exists() else 0
    return {"hit_ms": m * 1000, "runs_ms": [r * 1000 for r in all_runs], "make_started": makes}


def bench_suite(runs: int) -> dict[str, Any]:
    def suite(workers: str) -> Callable[[], float]:
        def once() -> float:
            log = cache.cache_root() / "logs" / f"bench-suite-n{workers}.log"
            t = time.monotonic()
            with log.open("w") as f:
                rc = subprocess.run([str(ROOT / ".venv/bin/pytest"), "-n", workers, "-q"],
                                    cwd=ROOT, stdout=f, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                raise SystemExit(f"the suite failed (exit {rc}); see {log}")
            return time.monotonic() - t
        return once

    auto, auto_all = median_of(runs, suite("auto"))
    one, one_all = median_of(runs, suite("1"))
    return {"n_auto_s": auto, "n_1_s": one, "speedup": one / auto, "cpus": os.cpu_count(),
            "n_auto_runs": auto_all, "n_1_runs": one_all}


def _timed_build(spec: BuildSpec, **env: str) -> tuple[Kernel, float]:
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t = time.monotonic()
        kernel = build_kernel(spec)
        return kernel, time.monotonic() - t
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _forget(kernel: Kernel) -> None:
    """Remove a kernel's cache entry (this process's holds let go first)."""
    assert kernel.build_dir is not None
    cache.release_all()
    shutil.rmtree(kernel.build_dir)


def bench_ccache() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(dir=cache.cache_root() / "scratch") as tmp:
        spec = BuildSpec(arch="x86_64")
        cold, cold_s = _timed_build(spec, LTOBOOT_CACHE=tmp)
        _forget(cold)
        warm, warm_s = _timed_build(spec, LTOBOOT_CACHE=tmp)
        frag = Path(tmp) / "one-more.config"
        frag.write_text('CONFIG_LOCALVERSION="-one-more"\n')
        tweak, tweak_s = _timed_build(BuildSpec(arch="x86_64", fragments=(str(frag),)),
                                      LTOBOOT_CACHE=tmp)
        cache.release_all()
    return {"cold_s": cold_s, "warm_s": warm_s, "tweak_s": tweak_s,
            "cold_ccache": cold.extra.get("ccache"), "warm_ccache": warm.extra.get("ccache"),
            "tweak_ccache": tweak.extra.get("ccache")}


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "Bench", "GIT_AUTHOR_EMAIL": "b@ltoboot.invalid",
           "GIT_COMMITTER_NAME": "Bench", "GIT_COMMITTER_EMAIL": "b@ltoboot.invalid"}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def _edit(repo: Path, path: str, old: str, new: str) -> None:
    f = repo / path
    text = f.read_text()
    assert old in text, f"{path}: {old!r} is not there"
    f.unlink()  # a hard link to the cached tree: a new inode
    f.write_text(text.replace(old, new, 1))


def bench_series() -> dict[str, Any]:
    from harness.kernel.variants import _copy_tree
    from harness.mail import series  # the reports stage: only this section needs it

    base = obtain(BuildSpec(arch="x86_64"))
    assert base.source_tree is not None
    nonce = str(time.time_ns())
    with tempfile.TemporaryDirectory(dir=cache.cache_root() / "scratch") as tmp:
        repo = Path(tmp) / "linux"
        _copy_tree(base.source_tree, repo)
        (repo / ".gitignore").unlink()  # Debian's ignores the whole top level
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "base")
        _git(repo, "tag", "base")
        sent = {}
        for version, greeting in (("v1", "hello"), ("v2", "hello again")):
            _git(repo, "checkout", "-q", "-B", version, "base")
            _edit(repo, "init/main.c", "\tint ret;\n\n",
                  f'\tint ret;\n\n\tpr_notice("bench {nonce}: {greeting}\\n");\n\n')
            _git(repo, "commit", "-q", "-a", "-m", "init: greet")
            _edit(repo, "init/Makefile", "\nobj-y ", "\nCFLAGS_main.o := -DBENCH=1\nobj-y ")
            _git(repo, "commit", "-q", "-a", "-m", "init: a flag")
            sent[version] = Path(tmp) / version
            _git(repo, "format-patch", "-q", "--cover-letter", f"-{version}", "-o",
                 str(sent[version]), "base")

        def spec(version: str) -> BuildSpec:
            applied = series.apply(series.read(sent[version], Path(tmp)), repo, "base")
            return BuildSpec(arch="x86_64", kernel_src=str(applied.tree))

        v1, v1_s = _timed_build(spec("v1"))
        v2, v2_s = _timed_build(spec("v2"))
        _forget(v2)
        full, full_s = _timed_build(spec("v2"), LTOBOOT_INCREMENTAL="0")
        for k in (v1, full):  # the series trees are of this bench alone
            assert k.source_tree is not None
            cache.release_all()
            shutil.rmtree(k.source_tree.parent)
    return {"v1_after_base_s": v1_s, "v1_ccache": v1.extra.get("ccache"),
            "v2_after_v1_s": v2_s, "v2_steps": v2.steps, "v2_full_s": full_s,
            "v2_full_steps": full.steps, "ratio": v2_s / full_s,
            "default_cold_s": base.build_seconds}


def bench_cold_suite() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LTOBOOT_CACHE": tmp}
        log = cache.cache_root() / "logs" / "bench-cold-suite.log"
        t = time.monotonic()
        with log.open("w") as f:
            rc = subprocess.run([str(ROOT / ".venv/bin/pytest"), "-n", "auto", "-q"], cwd=ROOT,
                                stdout=f, stderr=subprocess.STDOUT, env=env).returncode
        seconds = time.monotonic() - t
        size = int(subprocess.run(["du", "-sb", tmp], capture_output=True, text=True,
                                  check=True).stdout.split()[0])
    if rc != 0:
        raise SystemExit(f"the suite failed (exit {rc}); see {log}")
    return {"cold_s": seconds, "cache_bytes": size, "log": str(log)}


def bench_start(runs: int) -> dict[str, Any]:
    venv = Path(sys.executable).parent
    out: dict[str, Any] = {}
    for name, argv in (("ltoboot_help", [str(venv / "ltoboot"), "--help"]),
                       ("b4_version", [str(venv / "b4"), "--version"])):
        def once(argv: list[str] = argv) -> float:
            t = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            return time.perf_counter() - t

        out[f"{name}_s"], out[f"{name}_runs"] = median_of(runs, once)
    return out


def bench_run(runs: int, *command: str) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("ltoboot")
    argv = [str(exe), *(command or ("run",))]

    def once() -> float:
        t = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}")
        return time.monotonic() - t

    once()  # warm: everything built and cached
    total, all_runs = median_of(runs, once)
    return {"warm_run_s": total, "runs": all_runs}


def bench_defconfig(runs: int) -> dict[str, Any]:
    kernel = obtain(BuildSpec(arch="x86_64", config="defconfig"))
    booted = bench_boot(kernel, runs)
    run = bench_run(runs, "run", "--arch", "x86_64", "--config", "defconfig")
    return {"build_s": kernel.build_seconds, "steps": kernel.steps,
            "image_bytes": kernel.image.stat().st_size, "boot_s": booted["harness_s"],
            "boot_runs": booted["harness_runs"], "warm_run_s": run["warm_run_s"],
            "run_runs": run["runs"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--suite-runs", type=int)
    p.add_argument("--arch", default="x86_64,arm64")
    p.add_argument("--only", default=",".join(SECTIONS))
    p.add_argument("--kernel-build", action="store_true",
                   help="also one plain make vs harness build of the default x86_64 kernel")
    p.add_argument("--json")
    args = p.parse_args()
    only = args.only.split(",")
    arches = args.arch.split(",")
    out: dict[str, Any] = {"runs": args.runs}
    lines: list[str] = []

    def show(line: str) -> None:
        lines.append(line)
        print(line, flush=True)

    kernels = {a: obtain(BuildSpec(arch=a)) for a in arches}
    if "boot" in only:
        out["boot"] = {a: bench_boot(k, args.runs) for a, k in kernels.items()}
        for a, r in out["boot"].items():
            show(f"boot {a:7}  raw QEMU {r['raw_s']:6.2f} s   harness "
                         f"{r['harness_s']:6.2f} s   ratio {r['ratio']:.2f}x")
    if "vcpus" in only:
        out["vcpus"] = {a: bench_vcpus(k, args.runs) for a, k in kernels.items()}
        for a, r in out["vcpus"].items():
            show(f"vcpus {a:7}  -smp 1 {r['smp1_s']:6.2f} s   -smp 2 {r['smp2_s']:6.2f} s   "
                 f"ratio {r['ratio']:.2f}x")
    if "checks" in only:
        out["checks"] = {a: bench_checks(k, args.runs) for a, k in kernels.items()}
        for a, r in out["checks"].items():
            slow = sorted(r["per_check_s"].items(), key=lambda kv: -kv[1])[:5]
            show(f"checks {a:7}  {r['checks']} checks, {r['beyond_boot_s']:.2f} s "
                 "beyond the boot; slowest: "
                 + ", ".join(f"{n} {v:.2f}" for n, v in slow))
    first = kernels[arches[0]]
    if "build" in only:
        out["build"] = [bench_module_build(first, args.runs)]
        if args.kernel_build:
            out["build"].append(bench_kernel_build(BuildSpec(arch="x86_64")))
        for r in out["build"]:
            show(f"build {r['what']}: plain make {r['plain_make_s']:.2f} s   harness "
                         f"{r['harness_s']:.2f} s   ratio {r['ratio']:.2f}x")
    if "cache" in only:
        out["cache"] = bench_cache_hit(BuildSpec(arch=arches[0]), args.runs)
        show(f"cache hit {arches[0]}: {out['cache']['hit_ms']:.1f} ms, "
                     f"make started {out['cache']['make_started']} times")
    if "run" in only:
        out["run"] = bench_run(args.runs)
        show(f"run warm `ltoboot run` (both arches, every check): {out['run']['warm_run_s']:.1f} s")
    if "lava" in only:
        out["lava"] = bench_run(args.runs, "lava", "run")
        show(f"lava warm `ltoboot lava run` (both arches, every check, 6 jobs): "
             f"{out['lava']['warm_run_s']:.1f} s")
    if "suite" in only:
        out["suite"] = bench_suite(args.suite_runs or args.runs)
        r = out["suite"]
        show(f"suite warm: -n auto {r['n_auto_s']:.0f} s   -n 1 {r['n_1_s']:.0f} s   "
                     f"speed-up {r['speedup']:.2f}x on {r['cpus']} CPUs")
    if "start" in only:
        r = out["start"] = bench_start(args.runs)
        show(f"start `ltoboot --help` {r['ltoboot_help_s']:.2f} s, `b4 --version` "
             f"{r['b4_version_s']:.2f} s")
    if "ccache" in only:
        r = out["ccache"] = bench_ccache()
        show(f"ccache x86_64 kernel: cold {r['cold_s']:.0f} s ({r['cold_ccache']}), warm "
             f"{r['warm_s']:.0f} s ({r['warm_ccache']}), one option more {r['tweak_s']:.0f} s "
             f"({r['tweak_ccache']}): {r['cold_s'] / r['warm_s']:.1f}x, "
             f"{r['cold_s'] / r['tweak_s']:.1f}x faster")
    if "series" in only:
        r = out["series"] = bench_series()
        show(f"series 2 patches after the base: {r['v1_after_base_s']:.0f} s (ccache "
             f"{r['v1_ccache']}); v2 after v1 {r['v2_after_v1_s']:.0f} s ({r['v2_steps']} "
             f"steps) vs from nothing {r['v2_full_s']:.0f} s ({r['v2_full_steps']} steps): "
             f"{100 * r['ratio']:.0f}%")
    if "cold" in only:
        r = out["cold"] = bench_cold_suite()
        show(f"suite cold: -n auto {r['cold_s'] / 60:.1f} min, cache after it "
             f"{r['cache_bytes'] / 2**30:.1f} GiB")
    if "defconfig" in only:
        r = out["defconfig"] = bench_defconfig(args.runs)
        show(f"defconfig x86_64: build {r['build_s'] / 60:.1f} min ({r['steps']} steps), "
             f"image {r['image_bytes'] / 2**20:.1f} MiB, boot {r['boot_s']:.1f} s, warm "
             f"`ltoboot run` {r['warm_run_s']:.1f} s")
    print(f"\nltoboot benchmark (median of {args.runs} runs; TCG)")
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
