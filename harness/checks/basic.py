"""The basic checks: toolchain in /proc/version, LTO config, test_module."""

from __future__ import annotations

import re

from harness.checks.registry import Outcome, check
from harness.guest.protocol import GuestProtocol
from harness.kernel import kconfig
from harness.kernel.model import LTO_MODES, Kernel, lto_of_config, lto_title

LTO_GREP = "zgrep 'LTO[_=]' /proc/config.gz"  # how a human types it (the seed mail)


# -- pure evaluators -------------------------------------------------------------------------
def evaluate_proc_version(text: str, llvm_major: int | None) -> tuple[bool, str]:
    clang = re.search(r"clang version (\d+)\.[\d.]+", text)
    lld = re.search(r"LLD (\d+)\.[\d.]+", text)
    if not clang or not lld:
        missing = " and ".join(n for n, m in (("clang version", clang), ("LLD", lld)) if not m)
        return False, f"/proc/version does not name {missing}: not built with clang and LLD"
    got = (int(clang.group(1)), int(lld.group(1)))
    if llvm_major is not None and got != (llvm_major, llvm_major):
        return False, (f"built by clang {got[0]} / LLD {got[1]}, expected the toolchain "
                       f"that built it: {llvm_major}")
    return True, f"{clang.group(0)}, {lld.group(0)}"


def evaluate_lto_config(grep_output: str, want: str) -> tuple[bool, str]:
    values = kconfig.parse(grep_output)
    if not values:
        return False, "no LTO lines in /proc/config.gz (is CONFIG_IKCONFIG_PROC=y?)"
    got = lto_of_config(values)
    if want != "none" and got == "none":
        return False, (f"not an LTO kernel: {lto_title(want)} was expected, config has "
                       + ("CONFIG_LTO_NONE=y" if values.get("LTO_NONE") == "y"
                          else "no CONFIG_LTO_CLANG"))
    if got != want:
        return False, f"{lto_title(got)} kernel where {lto_title(want)} was expected"
    wrong = kconfig.not_stuck(LTO_MODES[want].expect, values)
    if wrong:
        return False, "unexpected LTO settings: " + "; ".join(wrong)
    return True, f"{lto_title(want)}: " + ", ".join(
        f"CONFIG_{k}={v}" if v != "n" else f"# CONFIG_{k} is not set"
        for k, v in LTO_MODES[want].expect.items())


def module_listed(proc_modules: str, name: str) -> bool:
    return any(line.split(" ", 1)[0] == name for line in proc_modules.splitlines())


# -- checks ----------------------------------------------------------------------------------
@check("proc_version", "/proc/version names the clang and LLD that built the kernel",
       evaluate=evaluate_proc_version)
def proc_version(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    out = guest.run("cat /proc/version").output.strip()
    ok, summary = evaluate_proc_version(out, kernel.llvm_major)
    return Outcome(ok, summary, out)


def lto_config_as(guest: GuestProtocol, want: str) -> Outcome:
    r = guest.run("zcat /proc/config.gz | grep 'LTO[_=]'")
    ok, summary = evaluate_lto_config(r.output, want)
    return Outcome(ok, summary, r.output.strip())


@check("lto_config", "/proc/config.gz has the LTO settings of the mode asked for",
       evaluate=evaluate_lto_config)
def lto_config(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    return lto_config_as(guest, kernel.lto)


@check("test_module", "lib/test_module.ko loads (Hello, world), is listed, and unloads")
def test_module(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    module = "test_module"  # lib/test_module.ko, which the check is named after
    load = guest.run(f"modprobe {module}")
    if not load.ok:
        return Outcome(False, f"modprobe {module} failed (exit {load.status})", load.output)
    hello = "Hello, world" in guest.run("dmesg").output
    listed = module_listed(guest.run("cat /proc/modules").output, module)
    unload = guest.run(f"rmmod {module}")
    gone = not module_listed(guest.run("cat /proc/modules").output, module)
    problems = [p for p, bad in (("no 'Hello, world' in dmesg", not hello),
                                 ("not in /proc/modules after loading", not listed),
                                 (f"rmmod failed: {unload.output.strip()}", not unload.ok),
                                 ("still in /proc/modules after rmmod", not gone)) if bad]
    if problems:
        return Outcome(False, "; ".join(problems))
    return Outcome(True, "loaded (Hello, world), listed in /proc/modules, unloaded")
