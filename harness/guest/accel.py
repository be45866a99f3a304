"""Which accelerator to use: KVM only where a cached probe booted a real guest under it.

/dev/kvm existing proves nothing (on some hosts guests hang under it), so the first boot of a
machine tries KVM with a short deadline and records the verdict; TCG is the fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.base import cache as artifact_cache
from harness.base import proc
from harness.base.arch import Arch
from harness.base.errors import UsageError

ACCELS = ("auto", "kvm", "tcg")
PROBE_TIMEOUT = 20.0  # seconds for a KVM boot that takes about one on a working host


@dataclass(frozen=True)
class Decision:
    accel: str | None  # "kvm" or "tcg"; None means: probe KVM now
    reason: str


def kvm_possible(arch: Arch) -> str | None:
    """None when KVM could run this guest here, else why not."""
    if platform.machine() != arch.kvm_host:
        return f"{arch.name} guest on a {platform.machine()} host"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not usable"
    return None


@cache
def _host_key(qemu: str) -> str:
    version = proc.run([qemu, "--version"], what="asking QEMU its version")
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    return hashlib.sha256(f"{platform.release()}|{version}|{cpu}".encode()).hexdigest()[:16]


def probe_record(arch: Arch, kernel_key: str | None = None) -> Path:
    """The host's KVM verdict for `arch`, or (kernel_key) one kernel's own."""
    name = f"kvm-{arch.name}-{_host_key(arch.qemu)}"
    return artifact_cache.cache_root() / "probe" / (
        f"{name}.json" if kernel_key is None else f"{name}-kernel-{kernel_key}.json")


# Failures under KVM that say the host cannot run guests (QEMU died, or nothing ever came):
# a panic, oops, BUG or CFI failure says something about the kernel instead.
HOST_FAILURES = ("exited", "hang")


def host_failure(kind: str) -> bool:
    return kind in HOST_FAILURES


def decide(arch: Arch, requested: str, kernel_key: str | None = None) -> Decision:
    if requested not in ACCELS:
        raise UsageError(f"--accel {requested}: use one of {', '.join(ACCELS)}")
    why_not = kvm_possible(arch)
    if requested == "tcg":
        return Decision("tcg", "TCG as requested")
    if requested == "kvm":
        if why_not:
            raise UsageError(f"--accel kvm: {why_not}; use --accel tcg or auto")
        return Decision("kvm", "KVM as requested")
    if why_not:
        return Decision("tcg", f"TCG: {why_not}")
    record = probe_record(arch)
    if record.exists():
        verdict = json.loads(record.read_text())
        if verdict["kvm"]:
            return Decision("kvm", f"KVM: probe booted a guest ({record})")
        return Decision("tcg", f"TCG: KVM probe failed: {verdict['reason']} ({record})")
    if kernel_key is not None and (own := probe_record(arch, kernel_key)).exists():
        reason = json.loads(own.read_text())["reason"]
        return Decision("tcg", f"TCG: this kernel failed under KVM: {reason} ({own})")
    return Decision(None, "KVM unproven: probing")


def remember(arch: Arch, kvm_ok: bool, reason: str, kernel_key: str | None = None) -> None:
    record = probe_record(arch, kernel_key)
    record.parent.mkdir(parents=True, exist_ok=True)
    artifact_cache.write_atomic(record, json.dumps({"kvm": kvm_ok, "reason": reason}))
