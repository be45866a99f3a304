"""LAVA job definitions, as one pure function of the kernel's facts and the plan.

The job boots QEMU like our own argv does (same machine, CPU, firmware and kernel command
line, minus panic=-1, which LAVA would take for an infrastructure error), deploys kernel and
initramfs to tmpfs (LAVA adds its test runner into the cpio: `overlays: {lava: true}`) and
runs one `lava-test-case` per check, whose command is that check's framed commands.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.base.arch import Arch
from harness.guest import qemu
from harness.kernel.model import Kernel
from harness.runs.lava import plan
from harness.runs.lava.plan import CheckPlan

PROMPT = "/ # "  # busybox ash's prompt for root in our initramfs
# Arches whose qemu.jinja2 branch sets -machine and -cpu from the job context; the others
# get them through extra_options
TEMPLATE_SETS_MACHINE = ("arm64",)
BOOTED = "lava-test-case booted --shell uname -r"
TIMEOUTS = {"deploy": 5, "boot": 5, "test": 15, "job": 30}  # minutes, TCG on 2 cores


@dataclass(frozen=True, eq=False)  # one job is one job: hashed by identity
class Job:
    kernel: Kernel
    name: str  # "" for the main job, else the crash check it runs
    path: Path
    plans: tuple[plan.CheckPlan, ...]
    firmware: str

    @property
    def label(self) -> str:
        return self.kernel.label + (f"-{self.name}" if self.name else "")

    def definition(self) -> dict[str, Any]:
        loaded: dict[str, Any] = yaml.safe_load(self.path.read_text())
        return loaded

    @property
    def vcpus(self) -> int:
        """The vCPUs its guest was given: the job's -smp, read as QEMU reads it (its first
        number or cpus=, the last -smp wins; 1, QEMU's default, without one)."""
        extra = self.definition().get("context", {}).get("extra_options") or []
        words = " ".join(str(o) for o in extra).split()
        found = 1
        for flag, value in itertools.pairwise(words):
            if flag == "-smp":
                found = smp_count(value, found)
        return found


def smp_count(value: str, default: int = 1) -> int:
    """The CPU count of a -smp value ("2", "2,sockets=1", "cpus=2,cores=2")."""
    for i, part in enumerate(value.split(",")):
        key, _, number = part.rpartition("=")
        if (key == "cpus" or (i == 0 and not key)) and number.isdigit():
            return int(number)
    return default


def machine_options(arch: Arch, efi: bool) -> str:
    machine = arch.machine
    if arch.tcg_machine_options:
        machine += f",{arch.tcg_machine_options}"
    if efi and arch.efi_machine_options:
        machine += f",{arch.efi_machine_options}"
    return machine


def context(arch: Arch, efi: bool, memory_mb: int = qemu.MEMORY_MB) -> dict[str, Any]:
    """The job context qemu.jinja2 renders the device from: TCG (no_kvm: else the template
    adds -enable-kvm -cpu host), our machine (with its UEFI options when booted through
    firmware) and CPU."""
    extra = ["-no-reboot", f"-smp {qemu.VCPUS}", *arch.qemu_extra]
    ctx: dict[str, Any] = {"arch": arch.name, "no_kvm": True, "memory": memory_mb}
    if arch.name in TEMPLATE_SETS_MACHINE:
        ctx |= {"machine": machine_options(arch, efi), "cpu": arch.tcg_cpu}
    else:
        extra = [f"-machine {machine_options(arch, efi)}", f"-cpu {arch.tcg_cpu}", *extra]
    ctx["extra_options"] = extra
    return ctx


def step(plan: CheckPlan) -> str:
    """One test shell step: lava-test-case runs `eval "$*"` on its --shell argument."""
    script = plan.script().replace("'", "'\"'\"'")
    return f"lava-test-case {plan.check} --shell '{script}'"


def definition(*, name: str, arch: Arch, kernel_url: str, initrd_url: str,
               firmware_url: str, plans: Sequence[CheckPlan], metadata: dict[str, str],
               sha256: Mapping[str, str] | None = None, memory_mb: int = qemu.MEMORY_MB
               ) -> dict[str, Any]:
    """`firmware_url`: UEFI firmware the job fetches like the kernel and boots through
    (-bios), so that a lab's worker needs none of its own; "": QEMU loads the kernel.
    `sha256`: per image (kernel, ramdisk, firmware), what LAVA checks the download against.
    `memory_mb`: the guest's RAM, as a local boot of the same initramfs gets (qemu.memory_for)."""
    append = qemu.kernel_cmdline(arch, panic=False)
    sums = {k: {"sha256sum": v} for k, v in (sha256 or {}).items() if v}
    firmware = {"firmware": {"url": firmware_url, "image_arg": "-bios {firmware}",
                             **sums.get("firmware", {})}} if firmware_url else {}
    return {
        "device_type": "qemu",
        "job_name": name,
        "timeouts": {"job": {"minutes": TIMEOUTS["job"]},
                     "connection": {"minutes": 2}},
        "priority": "medium",
        "visibility": "public",
        "context": context(arch, bool(firmware_url), memory_mb),
        "metadata": metadata,
        "actions": [
            {"deploy": {
                "to": "tmpfs",
                "timeout": {"minutes": TIMEOUTS["deploy"]},
                "images": {
                    "kernel": {"url": kernel_url,
                               "image_arg": f"-kernel {{kernel}} -append \"{append}\"",
                               **sums.get("kernel", {})},
                    "ramdisk": {"url": initrd_url, "image_arg": "-initrd {ramdisk}",
                                "format": "cpio.newc", "overlays": {"lava": True},
                                **sums.get("ramdisk", {})},
                    **firmware,
                }}},
            {"boot": {
                "method": "qemu",
                "media": "tmpfs",
                "timeout": {"minutes": TIMEOUTS["boot"]},
                "prompts": [PROMPT],
            }},
            {"test": {
                "timeout": {"minutes": TIMEOUTS["test"]},
                "definitions": [{
                    "from": "inline",
                    "name": "ltoboot",
                    "path": "inline/ltoboot.yaml",
                    "repository": {
                        "metadata": {"format": "Lava-Test Test Definition 1.0",
                                     "name": "ltoboot",
                                     "description": "ltoboot's checks: framed commands, "
                                     "judged by ltoboot from this log"},
                        # LAVA's overlay needs a test; a job of checks that type nothing
                        # (host-side ones, or none asked for) still boots and says so
                        "run": {"steps": [step(p) for p in plans] or [BOOTED]},
                    },
                }],
            }},
        ],
    }
