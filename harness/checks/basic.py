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


# -- a real in-tree module, where the config has any (=m) besides test_module -----------------
IN_TREE_TRIES = 6  # in modules.order order: a driver may refuse to load without its device
# what the module loader prints of a module it cannot take (kernel/module/*.c), any case: an
# LTO build's fault, never a missing device's
LOADER_ERRORS = ("unknown symbol", "disagrees about version", "unknown rela relocation",
                 "invalid elf", "section header", "module format", "exec format error")
# what busybox modprobe says of ENOEXEC, which only the loader returns (a driver's init may
# return ENOENT, which modprobe words as an unknown symbol: only the kernel's line counts)
MODPROBE_REFUSED = ("invalid module format", "exec format error")
# written to the kernel log before the modules are loaded: what the loader says after it is
# theirs (a full ring buffer keeps its line count; earlier checks' refusals come before it)
KMSG_MARK = "ltoboot: loading in-tree modules"


def in_tree_modules(kernel: Kernel) -> list[str]:
    """The in-tree modules the kernel installed (modules.order), by module name, but for
    test_module; the first IN_TREE_TRIES."""
    if kernel.modules is None:
        return []
    names: list[str] = []
    for order in sorted((kernel.modules / "lib/modules").glob("*/modules.order")):
        for line in order.read_text(errors="replace").split():
            name = line.rsplit("/", 1)[-1].removesuffix(".ko").replace("-", "_")
            if name and name != "test_module" and name not in names:
                names.append(name)
    return names[:IN_TREE_TRIES]


def after_mark(mark: str) -> str:
    """A filter of dmesg's output, in the guest: the lines after the last line holding `mark`
    (none without one). What a check needs of the kernel log since it wrote its mark to
    /dev/kmsg, without the serial console carrying the whole log (50-60 KB) to the host."""
    # $(0), not $0: LAVA's run.sh escapes every $<digit> of a --shell step (testdef.py), in
    # single quotes too, and awk then reads \$0
    return ("awk '/" + mark + "/ { n = NR } { line[NR] = $(0) } "
            "END { if (n) for (i = n + 1; i <= NR; i++) print line[i] }'")


def load_one_command(names: list[str]) -> str:
    """One guest command: load each of `names` in turn until one loads, then remove it (and
    the modules it pulled in); it says which loaded, how each failure ended, and then what
    the module loader said meanwhile (the kernel log after our mark, `loader: `)."""
    return (f"echo '{KMSG_MARK}' > /dev/kmsg; "
            f"for m in {' '.join(names)}; do if modprobe $m; then echo loaded $m; "
            "modprobe -r $m && echo unloaded $m; break; fi; echo failed $m; done; "
            f"dmesg | {after_mark(KMSG_MARK)} | grep -iE '" + "|".join(LOADER_ERRORS)
            + "' | sed 's/^/loader: /'")


def evaluate_in_tree(names: list[str], output: str) -> tuple[bool | None, str]:
    """(True: one loaded; False: the loader refused one; None: none of them could load here,
    no verdict), and what happened."""
    lines = output.splitlines()
    refused = [line.removeprefix("loader: ").strip() for line in lines
               if line.startswith("loader: ")] or \
        [line.strip() for line in lines if any(e in line.lower() for e in MODPROBE_REFUSED)]
    if refused:
        return False, f"the module loader refused an in-tree module: {refused[0]}"
    loaded = next((line.split()[1] for line in lines if line.startswith("loaded ")), None)
    if loaded is None:
        return None, (f"none of {len(names)} in-tree modules tried ({', '.join(names)}) loads "
                      "here (a driver without its device): no verdict on module loading")
    if f"unloaded {loaded}" not in lines:  # one without an exit function stays: no fault
        return True, f"in-tree module {loaded} loaded (modprobe -r could not remove it)"
    return True, f"in-tree module {loaded} loaded and unloaded"


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


@check("test_module", "lib/test_module.ko loads (Hello, world), is listed, and unloads; so "
       "does a real in-tree module, where the kernel installed one")
def test_module(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    module = "test_module"  # lib/test_module.ko, which the check is named after
    load = guest.run(f"modprobe {module}")
    if not load.ok:
        return Outcome(False, f"modprobe {module} failed (exit {load.status})", load.output)
    hello = "Hello, world" in guest.run("dmesg | grep -F 'Hello, world'").output
    listed = module_listed(guest.run("cat /proc/modules").output, module)
    unload = guest.run(f"rmmod {module}")
    gone = not module_listed(guest.run("cat /proc/modules").output, module)
    problems = [p for p, bad in (("no 'Hello, world' in dmesg", not hello),
                                 ("not in /proc/modules after loading", not listed),
                                 (f"rmmod failed: {unload.output.strip()}", not unload.ok),
                                 ("still in /proc/modules after rmmod", not gone)) if bad]
    # the in-tree part whatever the above found: a LAVA job records every command it types
    names = in_tree_modules(kernel)
    tried = guest.run(load_one_command(names), timeout=30.0) if names else None
    if problems:
        return Outcome(False, "; ".join(problems))
    summary = "loaded (Hello, world), listed in /proc/modules, unloaded"
    if tried is None:
        return Outcome(True, summary + "; no other in-tree module (none =m in the config)")
    ok, said = evaluate_in_tree(names, tried.output)
    return Outcome(ok is not False, f"{summary}; {said}", tried.output.strip())
