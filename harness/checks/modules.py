"""Module loading and versioning under LTO: our probe modules, CRCs, merged sections."""

from __future__ import annotations

import re
from pathlib import Path

from harness.base import elf
from harness.checks.basic import after_mark, module_listed
from harness.checks.registry import Outcome, check
from harness.guest import modules
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

SPLIT_SECTION = re.compile(r"^\.(data|rodata|bss)\..+")


def zero_crcs(symvers: str) -> list[str]:
    """Symbols whose Module.symvers CRC is zero (LTO once lost them: kbuild: lto: fix
    module versioning)."""
    return [line.split("\t")[1] for line in symvers.splitlines()
            if line.startswith("0x") and int(line.split("\t")[0], 16) == 0]


def split_sections(names: list[str]) -> list[str]:
    return [n for n in names if SPLIT_SECTION.match(n)]


@check("symvers_crcs", "Module.symvers of the kernel and of our modules has no zero CRC",
       evaluate=zero_crcs)
def symvers_crcs(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    if kernel.build_dir is None:
        return shipped_crcs(kernel)
    texts = {"vmlinux": Path(kernel.build_dir, "Module.symvers"),
             "probe modules": modules.probe_modules(kernel).symvers}
    total, zeros = 0, []
    for what, path in texts.items():
        text = path.read_text()
        total += sum(1 for line in text.splitlines() if line.startswith("0x"))
        zeros += [f"{s} ({what})" for s in zero_crcs(text)]
    if total == 0:
        return Outcome(False, "no CRCs in Module.symvers (MODVERSIONS off?)")
    if zeros:
        return Outcome(False, f"{len(zeros)} of {total} CRCs are zero", "\n".join(zeros[:30]))
    return Outcome(True, f"{total} CRCs, none zero")


def shipped_crcs(kernel: Kernel) -> Outcome:
    """Without a build directory, the CRCs the kernel's own modules import (Module.symvers put
    them there) stand in for Module.symvers."""
    total, zeros = 0, []
    for ko in modules.shipped(kernel):
        versions = elf.module_versions(ko.read_bytes())
        total += len(versions)
        zeros += [f"{s} ({ko.name})" for s, crc in versions.items() if crc & 0xFFFFFFFF == 0]
    if total == 0:
        return Outcome(False, "no build directory, and no module CRCs to read instead "
                       "(no modules, or MODVERSIONS off?)")
    if zeros:
        return Outcome(False, f"{len(zeros)} of {total} module __versions CRCs are zero",
                       "\n".join(zeros[:30]))
    return Outcome(True, f"no build directory: {total} __versions CRCs of the kernel's own "
                   "modules, none zero")


@check("probe_modules", "our M= modules load, link to each other, show up, merge sections, "
       "unload", evaluate=split_sections)
def probe_modules(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    d = modules.GUEST_DIR
    modules.probe_modules(kernel)
    problems = []
    for m in ("ltoboot_probe", "ltoboot_user"):
        r = guest.run(f"insmod {d}/{m}.ko")
        if not r.ok:
            problems.append(f"insmod {m}: {r.output.strip()}")
    listed = guest.run("cat /proc/modules").output
    sysfs = guest.run("ls /sys/module").output.split()
    for m in ("ltoboot_probe", "ltoboot_user"):
        if not module_listed(listed, m):
            problems.append(f"{m} not in /proc/modules")
        if m not in sysfs:
            problems.append(f"no /sys/module/{m}")
    lto_named = [m for m in [*sysfs, *(line.split(" ")[0] for line in listed.splitlines())]
                 if m.endswith(".lto")]
    if lto_named:
        problems.append("module names ending in .lto: " + ", ".join(sorted(set(lto_named))))
    sections = [s for s in guest.run("ls -a /sys/module/ltoboot_probe/sections").output.split()
                if s not in (".", "..")]
    # LTO splits every object into its own section and module.lds.S merges them back; without
    # LTO, sections such as .rodata.str1.1 are ordinary
    split = split_sections(sections) if kernel.lto != "none" else []
    if split:
        problems.append("split sections not merged: " + " ".join(split))
    if "ltoboot_probe_value() = 42" not in guest.run("dmesg | grep ltoboot_user:").output:
        problems.append("ltoboot_user did not get 42 from ltoboot_probe_value()")
    for m in ("ltoboot_user", "ltoboot_probe"):
        r = guest.run(f"rmmod {m}")
        if not r.ok:
            problems.append(f"rmmod {m}: {r.output.strip()}")
    if module_listed(guest.run("cat /proc/modules").output, "ltoboot_probe"):
        problems.append("ltoboot_probe still loaded after rmmod")
    if problems:
        return Outcome(False, "; ".join(problems), " ".join(sections))
    return Outcome(True, "ltoboot_probe and ltoboot_user loaded, linked, listed, unloaded; "
                   f"sections: {' '.join(sections)}")


def refused(loaded: bool, log: str, symbol: str, output: str) -> Outcome:
    """The verdict on loading a module whose CRC for `symbol` was altered."""
    disagrees = f"disagrees about version of symbol {symbol}"
    if loaded:
        return Outcome(False, f"the module with a wrong CRC for {symbol} was loaded", log)
    if disagrees not in log:
        return Outcome(False, f"refused, but dmesg lacks '{disagrees}'", output + "\n" + log)
    return Outcome(True, f"refused: {disagrees}")


# written to the kernel log before the module with an altered CRC is loaded: the loader's
# refusal is looked for after it (dmesg keeps whole for the checks after this one)
MARK = "ltoboot: loading a module with an altered CRC"


@check("modversions", "a module with one altered __versions CRC is refused by the kernel",
       evaluate=refused)
def modversions(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    d = modules.GUEST_DIR
    if kernel.build_dir is None:
        return shipped_modversions(guest, kernel)
    if not (modules.probe_modules(kernel).dir / modules.USER_BADCRC).exists():
        return Outcome(False, f"{modules.USER} has no __versions CRC for {modules.EXPORTED} "
                       "to alter: module versioning lost its CRCs")
    guest.run(f"echo '{MARK}' > /dev/kmsg")  # what the kernel says from here on is ours
    guest.run(f"insmod {d}/{modules.PROBE}")
    bad = guest.run(f"insmod {d}/{modules.USER_BADCRC}")
    log = guest.run(f"dmesg | {after_mark(MARK)}").output
    guest.run("rmmod ltoboot_user; rmmod ltoboot_probe")
    return refused(bad.ok, log, modules.EXPORTED, bad.output)


def shipped_modversions(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    bad = modules.shipped_badcrc(kernel)
    if bad is None:
        return Outcome(False, f"no build directory and no {modules.SHIPPED} with __versions "
                       "to alter")
    path, symbol = bad
    guest.run(f"echo '{MARK}' > /dev/kmsg")
    r = guest.run(f"insmod {modules.GUEST_DIR}/{path.name}")
    log = guest.run(f"dmesg | {after_mark(MARK)}").output
    guest.run(f"rmmod {path.stem.replace('_badcrc', '')}")
    return refused(r.ok, log, symbol, r.output)
