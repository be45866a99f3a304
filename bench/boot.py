"""Boot overhead: raw QEMU to our init's ready marker vs the harness's boot to a usable shell.

    .venv/bin/python bench/boot.py [--runs 5] [--arch x86_64,arm64] [--json out.json]

Same kernel, initramfs and argv for both; median of --runs boots each, on the cached default
kernels (built first if needed). Raw: QEMU's stdout read until LTOBOOT-READY. Harness: the
whole boot.start() (spawn, pexpect, log file, ready wait).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import boot, qemu
from harness.arch import get_arch
from harness.build import BuildSpec, build_kernel
from harness.initramfs import build_initramfs


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


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--arch", default="x86_64,arm64")
    p.add_argument("--json")
    args = p.parse_args()
    rows = []
    for name in args.arch.split(","):
        kernel = build_kernel(BuildSpec(arch=name))
        initrd = build_initramfs(kernel, None, boot.guest_files(kernel))
        arch = get_arch(name)
        argv = qemu.qemu_argv(arch, kernel.image, initrd, qemu.kernel_cmdline(arch))
        raw, harness = [], []
        for _ in range(args.runs):
            raw.append(raw_boot(argv))
            t = time.monotonic()
            guest = boot.start(kernel, "tcg", initrd=initrd, extra_cmdline=())
            harness.append(time.monotonic() - t)
            guest.close()
        r, h = statistics.median(raw), statistics.median(harness)
        rows.append({"arch": name, "runs": args.runs, "raw_s": round(r, 3),
                     "harness_s": round(h, 3), "ratio": round(h / r, 3)})
    print(f"{'arch':8} {'raw QEMU':>10} {'harness':>10} {'ratio':>7}   "
          f"(median of {args.runs}, TCG)")
    for row in rows:
        print(f"{row['arch']:8} {row['raw_s']:>9.2f}s {row['harness_s']:>9.2f}s "
              f"{row['ratio']:>6.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
