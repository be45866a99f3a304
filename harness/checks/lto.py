"""LTO evidence that does not trust the config: the ELF note, ThinLTO-promoted symbol names."""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.base import elf
from harness.checks.registry import Outcome, check
from harness.guest import modules
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

LINUX_ELFNOTE_LTO_INFO = 0x101  # include/linux/elfnote-lto.h
_LLVM = re.compile(r"^([0-9a-f]+) ([tT]) (\S+)\.llvm\.\d+$")


def lto_note(notes: list[elf.Note]) -> bool | None:
    """What the kernel's Linux LTO_INFO note says (None when it has none)."""
    for n in notes:
        if n.name == "Linux" and n.type == LINUX_ELFNOTE_LTO_INFO and len(n.desc) >= 4:
            return int.from_bytes(n.desc[:4], "little") != 0
    return None


def od_bytes(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


@check("lto_elf_note", "the Linux LTO note in /sys/kernel/notes agrees with the LTO mode",
       evaluate=lto_note)
def lto_elf_note(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    r = guest.run("od -An -v -tx1 /sys/kernel/notes")
    if not r.ok:
        return Outcome(False, "cannot read /sys/kernel/notes", r.output)
    says = lto_note(elf.notes(od_bytes(r.output)))
    want = kernel.lto != "none"
    if says is None:
        return Outcome(False, "no Linux LTO_INFO note in /sys/kernel/notes")
    word = "LTO" if says else "no LTO"
    return Outcome(says == want, f"the note says {word}" + (
        "" if says == want else f", but the kernel was built with {kernel.lto}"))


def promoted_functions(system_map: str) -> list[tuple[str, str]]:
    """(plain name, full name) of .llvm.<hash> functions whose plain name is unique."""
    plain: Counter[str] = Counter()
    found = []
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) == 3:
            plain[parts[2].split(".llvm.")[0]] += 1
        if m := _LLVM.match(line):
            found.append((m.group(3), line.split()[2]))
    return [(p, full) for p, full in found if plain[p] == 1]


# Linux 6.11 ("kallsyms: Match symbols exactly with CONFIG_LTO_CLANG") stopped stripping
# .llvm.<hash> before comparing names: before, a ThinLTO-promoted static function was found by
# its C name; since, only by its full name. The one place that knows which side a kernel is on.
KALLSYMS_EXACT_SINCE = (6, 11)


def kallsyms_exact(release: str) -> bool | None:
    """True when kallsyms of this kernel release matches names exactly; None when unknown."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return None if m is None else (int(m.group(1)), int(m.group(2))) >= KALLSYMS_EXACT_SINCE


def kprobe_cmd(symbol: str) -> str:
    # names come from System.map, which we did not write: quoted, whatever they hold
    return (f"insmod {modules.GUEST_DIR}/{modules.PROBE} lookup={shlex.quote(symbol)} && "
            f"rmmod ltoboot_probe; dmesg | grep -F {shlex.quote(f'kprobe {symbol} at')} "
            "| tail -1")


def kprobe_address(output: str) -> int | None:
    """Where the kprobe kprobe_cmd registered landed, None if it failed."""
    got = re.search(r"at ([0-9a-f]+)$", output.strip())
    return int(got.group(1), 16) if got else None


def kallsyms_cmd(symbol: str) -> str:
    """A .llvm.<hash> name's kallsyms line, from what COUNT_CMD kept of kallsyms (the check
    types it first): one read of /proc/kallsyms a check, which is most of its time."""
    return f"grep -F {shlex.quote(' ' + symbol)} {LLVM_NAMES}"


def kallsyms_address(output: str) -> int | None:
    """The address of kallsyms_cmd's first line, None without one."""
    out = output.split()
    return int(out[0], 16) if out and re.fullmatch(r"[0-9a-f]+", out[0]) else None


# kallsyms' .llvm.<hash> lines, kept in the guest for the lookups after the count. A fixed
# string: busybox grep's regular expression takes 0.9 s for the 30,000 lines of x86_64's
# kallsyms under TCG, -F 0.3 s, and kallsyms itself is most of that
LLVM_NAMES = "/tmp/ltoboot-llvm-names"
COUNT_CMD = f"grep -F .llvm. /proc/kallsyms > {LLVM_NAMES}; wc -l < {LLVM_NAMES}"
CANDIDATES = 8  # promoted functions tried, in System.map order, until one is found


def count_of(output: str) -> int | None:
    """How many .llvm.<hash> names COUNT_CMD found, None when it did not print a number."""
    return int(output.strip()) if output.strip().isdigit() else None


@dataclass(frozen=True)
class Lookup:
    """What the guest printed when asked for one promoted function: kallsyms_cmd of its full
    name, kprobe_cmd of the name its kernel looks it up by (the full one where kallsyms
    matches exactly, Linux >= 6.11), and there, once that found it, kprobe_cmd of its C name
    (None: not asked)."""

    plain: str
    full: str
    kallsyms: str
    kprobe: str
    plain_kprobe: str | None = None

    @property
    def found(self) -> bool:
        at = kallsyms_address(self.kallsyms)
        return at is not None and kprobe_address(self.kprobe) == at


def lookup_candidates(kernel: Kernel) -> tuple[bool, list[tuple[str, str]]] | None:
    """(kallsyms matches exactly, the (plain, full) names to look up), or None when the
    lookup cannot be checked on this kernel (evaluate_llvm_symbols says why)."""
    exact = kallsyms_exact(kernel.release)
    if kernel.lto != "thin" or kernel.system_map is None or exact is None \
            or not Path(kernel.system_map).is_file() or kernel.build_dir is None:
        return None
    return exact, promoted_functions(kernel.system_map.read_text())[:CANDIDATES]


def llvm_symbols_plan(kernel: Kernel) -> list[str]:
    """Every command llvm_symbols may type, in its order (what it types depends on what the
    guest printed: it stops at the first name found)."""
    found = lookup_candidates(kernel)
    cmds = [COUNT_CMD]
    if found is not None:
        exact, candidates = found
        for plain, full in candidates:
            cmds += [kallsyms_cmd(full), kprobe_cmd(full if exact else plain)]
            cmds += [kprobe_cmd(plain)] if exact else []
    return cmds


def evaluate_llvm_symbols(counted: str, lto: str, release: str, lookups: Sequence[Lookup] = (),
                          *, system_map: bool = True, build_dir: bool = True) -> Outcome:
    """The verdict on what the guest printed: COUNT_CMD's output and, on a ThinLTO kernel
    whose lookup can be checked (a System.map, a build directory for our kprobe module, a
    release that says which kallsyms it has), the lookups asked, up to the first found."""
    count = count_of(counted)
    if count is None:
        return Outcome(False, "cannot count names in /proc/kallsyms", counted)
    if lto != "thin":
        return Outcome(count == 0, f"{count} .llvm.<hash> names in /proc/kallsyms "
                       "(expected none without ThinLTO)")
    if count == 0:
        return Outcome(False, "no .llvm.<hash> names in /proc/kallsyms of a ThinLTO kernel")
    exact = kallsyms_exact(release)
    if not system_map:
        return Outcome(True, f"{count} .llvm.<hash> names (no System.map: lookup not checked)")
    if not build_dir:
        return Outcome(True, f"{count} .llvm.<hash> names (lookup not checked: our kprobe "
                       "module needs the kernel's build directory)")
    if exact is None:
        return Outcome(True, f"{count} .llvm.<hash> names (lookup not checked: release "
                       f"{release!r} does not say which kallsyms it has)")

    def by(x: Lookup) -> str:
        return x.full if exact else x.plain

    for x in lookups:
        if x.found:
            summary = f"{count} .llvm.<hash> names; kprobe on {by(x)} found {x.full} at " \
                f"{kallsyms_address(x.kallsyms):x}"
            if exact:  # say, not judge, what the C name finds: a backport may keep stripping
                plain_at = kprobe_address(x.plain_kprobe or "")
                summary += " (Linux >= 6.11 matches exactly; the C name " + (
                    "is not found)" if plain_at is None else f"is found too, at {plain_at:x})")
            return Outcome(True, summary)
    tried = []
    for x in lookups:
        got, addr = kprobe_address(x.kprobe), kallsyms_address(x.kallsyms)
        tried.append(f"{by(x)}: kprobe " + (f"at {got:x}" if got is not None else "failed")
                     + f" (kallsyms: {x.full} at " + (f"{addr:x})" if addr else "?)"))
    return Outcome(False, f"{count} .llvm.<hash> names, but none could be found by its "
                   f"{'full' if exact else 'plain'} name (kallsyms of Linux {release} "
                   + ("matches exactly)" if exact else "strips .llvm.<hash>)"), "\n".join(tried))


def look_up(guest: GuestProtocol, exact: bool, candidates: Iterable[tuple[str, str]]
            ) -> list[Lookup]:
    """Ask the guest for each candidate, in order, until one is found."""
    asked = []
    for plain, full in candidates:
        x = Lookup(plain, full, guest.run(kallsyms_cmd(full)).output,
                   guest.run(kprobe_cmd(full if exact else plain)).output)
        if x.found and exact:
            x = dataclasses.replace(x, plain_kprobe=guest.run(kprobe_cmd(plain)).output)
        asked.append(x)
        if x.found:
            break
    return asked


@check("llvm_symbols", "ThinLTO: kallsyms has .llvm.<hash> names, and a kprobe finds them by "
       "the name their kernel looks them up by (the C name before 6.11, the full one since)",
       evaluate=evaluate_llvm_symbols, plan=llvm_symbols_plan)
def llvm_symbols(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    counted = guest.run(COUNT_CMD).output
    found = lookup_candidates(kernel) if (count_of(counted) or 0) > 0 else None
    lookups = []
    if found is not None:
        modules.probe_modules(kernel)  # the guest's copy of ltoboot_probe.ko comes from here
        lookups = look_up(guest, *found)
    return evaluate_llvm_symbols(
        counted, kernel.lto, kernel.release, lookups, build_dir=kernel.build_dir is not None,
        system_map=kernel.system_map is not None and Path(kernel.system_map).is_file())
