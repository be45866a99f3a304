"""Booting a kernel: initramfs, accelerator choice (with the KVM probe), QEMU, ready shell."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from filelock import FileLock

from harness.base import cache
from harness.base.arch import get_arch
from harness.base.errors import KernelFailure, LtobootError
from harness.base.progress import say
from harness.guest import accel, modules, monitor, qemu, tools
from harness.guest.initramfs import build_initramfs
from harness.guest.protocol import GuestProtocol
from harness.guest.session import Guest
from harness.kernel import toolchain
from harness.kernel.model import Kernel

FIRMWARE_SECONDS = 5.0  # what UEFI firmware may add to a boot under KVM (TCG: about 1 s)
BOOT_TIMEOUT = 15.0  # seconds to the shell under KVM; TCG multiplies by the arch's slowdown
# ... for a kernel image of up to SMALL_IMAGE_MB (tinyconfig's: 2 MiB x86_64 bzImage, 6 MiB
# arm64 Image); a bigger one (a defconfig's, a distribution's: thousands more initcalls and
# drivers probing) gets PER_MB more seconds for each MiB beyond
SMALL_IMAGE_MB = 8.0
PER_MB = 1.0


def boot_timeout(image: Path) -> float:
    """Seconds to the shell under KVM for the kernel `image`: scaled with what is booted."""
    try:
        mb = image.stat().st_size / 2**20
    except OSError:
        mb = 0.0
    return BOOT_TIMEOUT + PER_MB * max(0.0, mb - SMALL_IMAGE_MB)


def boot_log(label: str, log_dir: Path | None = None) -> Path:
    d = log_dir or cache.cache_root() / "logs" / "boot"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns()}.log"


def start(kernel: Kernel, accel_name: str, *, initrd: Path | None, extra_cmdline: Sequence[str],
          timeout: float | None = None, label: str | None = None,
          log_dir: Path | None = None, firmware: str = "", wait: bool = True,
          pausable: bool = False) -> Guest:
    """Start QEMU; wait for the shell unless `wait` is False (then Guest.ready() does).
    `pausable`: with QEMU's machine protocol, for Guest.pause() (a guest kept idle)."""
    arch = get_arch(kernel.arch)
    scale = 1.0 if accel_name == "kvm" else arch.tcg_slowdown
    qmp = monitor.new_name() if pausable else ""
    argv = qemu.qemu_argv(arch, kernel.image, initrd, qemu.kernel_cmdline(arch, extra_cmdline),
                          accel=accel_name, firmware=firmware, qmp=qmp, smp=qemu.VCPUS,
                          memory_mb=qemu.memory_for(initrd.stat().st_size if initrd else 0))
    name = label or kernel.label
    guest = Guest(argv, boot_log(name, log_dir), label=name, accel=accel_name,
                  timeout_scale=scale, monitor=monitor.Monitor(qmp) if qmp else None,
                  vcpus=qemu.VCPUS)
    guest.firmware = firmware
    say(f"booting {name} ({accel_name}): {shlex.join(argv)}; console log: {guest.log}")
    guest.firmware_allowance = FIRMWARE_SECONDS * scale if firmware else 0.0
    guest.ready_timeout = (timeout if timeout is not None else
                           boot_timeout(kernel.image) * scale) \
        + guest.firmware_allowance
    return guest.ready() if wait else guest


def companion(main: GuestProtocol, kernel: Kernel, kind: str, *, firmware: str = "") -> Guest:
    """Start, without waiting, another guest of `main`'s kernel and accelerator that serves
    some of its checks (one they may crash); closed with main. QEMU loads its kernel itself
    unless `firmware` is given."""
    initrd = build_initramfs(kernel, None, guest_files(kernel))
    guest = start(kernel, main.accel, initrd=initrd, extra_cmdline=(),
                  label=f"{main.label}-{kind}", log_dir=main.log.parent, firmware=firmware,
                  wait=False, pausable=isinstance(main, Guest) and main.monitor is not None)
    main.companions[kind] = guest
    return guest


def guest_files(kernel: Kernel) -> dict[str, Path]:
    """Files our checks need in the guest: our static programs and the probe modules, when
    they can be built (a check that needs them reports why they are missing)."""
    files: dict[str, Path] = {}
    try:
        files[f"{modules.GUEST_DIR}/{tools.VDSO}"] = tools.guest_tool(kernel, tools.VDSO)
    except LtobootError as e:
        say(f"{kernel.label}: no {tools.VDSO} in the guest: {str(e).splitlines()[0]}")
    if kernel.build_dir is None:  # prebuilt: an altered copy of its own test_module.ko
        bad = modules.shipped_badcrc(kernel)
        return files | ({f"{modules.GUEST_DIR}/{bad[0].name}": bad[0]} if bad else {})
    try:
        probe = modules.probe_modules(kernel)
    except LtobootError as e:
        say(f"{kernel.label}: no probe modules in the guest: {str(e).splitlines()[0]}")
        return files
    return files | {f"{modules.GUEST_DIR}/{f.name}": f for f in probe.files()}


def default_firmware(kernel: Kernel) -> str:
    """The firmware a kernel's main boot goes through: the arch's UEFI firmware when the
    kernel has an EFI stub (CONFIG_EFI) and the firmware is installed (else QEMU loads the
    kernel itself, and efi_stub says why it cannot judge)."""
    arch = get_arch(kernel.arch)
    if not arch.efi_firmware or "CONFIG_EFI=y" not in kernel.config.read_text(errors="replace"
                                                                             ).splitlines():
        return ""
    if not Path(arch.efi_firmware).is_file():
        say(f"{kernel.label}: not booting through UEFI: {arch.efi_firmware} is missing "
            f"(apt-get install {arch.efi_firmware_package})")
        return ""
    return arch.efi_firmware


@dataclass(frozen=True)
class BootRequest:
    """What to boot and how: `kernel` under `accel_mode` (auto: KVM where a probe booted a
    guest under it, else TCG), our init or `init`, `extra_cmdline` on the kernel's command
    line, `timeout` to the shell (None: the arch's), no initramfs at all when
    `with_initramfs` is False, `label` naming the console log (in `log_dir`), through
    `firmware` (None: the arch's UEFI firmware for a kernel with an EFI stub, whose boot then
    exercises the stub at no extra boot; "" to have QEMU load the kernel itself), `pausable`
    when it will be kept idle (start())."""

    kernel: Kernel
    accel_mode: str = "auto"
    init: Path | None = None
    extra_cmdline: Sequence[str] = ()
    timeout: float | None = None
    with_initramfs: bool = True
    label: str | None = None
    log_dir: Path | None = None
    firmware: str | None = None
    pausable: bool = False


def boot(request: BootRequest) -> Guest:
    """A guest booted to our shell as `request` asks. Raises KernelFailure (kernel's fault)
    or InfraError."""
    kernel = request.kernel
    arch = get_arch(kernel.arch)
    firmware = default_firmware(kernel) if request.firmware is None else request.firmware
    toolchain.require([(arch.qemu, arch.qemu_package)])
    initrd = build_initramfs(kernel, request.init, guest_files(kernel)) \
        if request.with_initramfs else None

    def go(accel_name: str, limit: float | None) -> Guest:
        return start(kernel, accel_name, initrd=initrd, extra_cmdline=request.extra_cmdline,
                     timeout=limit, label=request.label, log_dir=request.log_dir,
                     firmware=firmware, pausable=request.pausable)

    decision = accel.decide(arch, request.accel_mode, kernel.key)
    if decision.accel is not None:
        guest = go(decision.accel, request.timeout)
        guest.accel_reason = decision.reason
        return guest
    with FileLock(str(accel.probe_record(arch)) + ".lock"):
        decision = accel.decide(arch, request.accel_mode, kernel.key)
        if decision.accel is not None:  # another process probed meanwhile
            return boot(replace(request, firmware=firmware))
        try:
            guest = go("kvm", max(accel.PROBE_TIMEOUT, boot_timeout(kernel.image)))
        except KernelFailure as e:
            kvm_failure, kind = f"{e.kind}: {e.summary} (log {e.log})", e.kind
        else:
            accel.remember(arch, True, f"booted in {guest.boot_seconds:.1f}s")
            guest.accel_reason = "KVM: probe booted this guest"
            return guest
        say(f"KVM did not boot {kernel.label} ({kvm_failure}); falling back to TCG")
        guest = go("tcg", request.timeout)
        # A verdict on the host only when QEMU itself failed under KVM and the same kernel
        # then booted under TCG; a kernel that fails under KVM alone is that kernel's story.
        if accel.host_failure(kind):
            accel.remember(arch, False, kvm_failure)
            guest.accel_reason = f"TCG: KVM probe failed: {kvm_failure}"
        else:
            accel.remember(arch, False, kvm_failure, kernel_key=kernel.key)
            guest.accel_reason = (f"TCG: this kernel failed under KVM ({kvm_failure}) but "
                                  "booted under TCG; KVM stays unproven for others")
        return guest
