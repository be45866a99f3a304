"""What the build itself must show under LTO, read from the build outputs (no guest):
objtool ran on vmlinux.o, with --mcount where ftrace records call sites that way (the series'
06, 07 and 11/28), the ThinLTO import limit reached the linker (12/28), and LKDTM's function
for executing from rodata really lies in .rodata (21/28)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from harness.base.errors import NotApplicable
from harness.checks.registry import Outcome, check, kernel_config
from harness.guest.protocol import GuestProtocol
from harness.kernel.model import Kernel

RODATA_FUNCTION = "lkdtm_rodata_do_nothing"
_SAVED = re.compile(r"^(?:saved)?cmd_vmlinux\.o := (.*)$", re.M)


def vmlinux_o_command(build_dir: Path) -> str | None:
    """How kbuild made vmlinux.o (its saved command), or None."""
    cmd = build_dir / ".vmlinux.o.cmd"
    m = _SAVED.search(cmd.read_text(errors="replace")) if cmd.is_file() else None
    return m.group(1) if m else None


def _addresses(system_map: str, names: tuple[str, ...]) -> dict[str, tuple[int, str]]:
    where: dict[str, tuple[int, str]] = {}
    for line in system_map.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            where[parts[2]] = (int(parts[0], 16), parts[1])
    return where


def mcount_locations(system_map: str) -> tuple[bool, str] | None:
    """Whether vmlinux has ftrace call sites between __start_mcount_loc and __stop_mcount_loc
    (None: no such symbols)."""
    where = _addresses(system_map, ("__start_mcount_loc", "__stop_mcount_loc"))
    if len(where) != 2:
        return None
    size = where["__stop_mcount_loc"][0] - where["__start_mcount_loc"][0]
    if size <= 0:
        return False, "no ftrace call sites in vmlinux: __start_mcount_loc == __stop_mcount_loc"
    return True, f"{size // 8} ftrace call sites in vmlinux's mcount_loc table"


def rodata_placement(system_map: str) -> tuple[bool, str] | None:
    """Whether RODATA_FUNCTION lies between __start_rodata and __end_rodata, or None when the
    kernel has no such function (no LKDTM)."""
    where = _addresses(system_map, (RODATA_FUNCTION, "__start_rodata", "__end_rodata"))
    if RODATA_FUNCTION not in where:
        return None
    addr, kind = where[RODATA_FUNCTION]
    if "__start_rodata" not in where or "__end_rodata" not in where:
        return False, "System.map has no __start_rodata/__end_rodata"
    inside = where["__start_rodata"][0] <= addr < where["__end_rodata"][0]
    fact = f"{RODATA_FUNCTION} at {addr:#x} ({kind}) " + \
        ("in .rodata" if inside else "outside .rodata [__start_rodata, __end_rodata)")
    return inside and kind not in "tT", fact


def evaluate_build_outputs(command: str | None, config: Mapping[str, str], arch: str,
                           lto: str, system_map: str) -> list[tuple[bool, str]]:
    """(ok, fact) for each part that applies to this kernel."""
    facts: list[tuple[bool, str]] = []
    if command is not None:
        objtool = next((part.strip() for part in command.split(";")
                        if "objtool" in part and "vmlinux.o" in part), None)
        if config.get("OBJTOOL") == "y" and lto != "none":
            facts.append((objtool is not None, "objtool ran on vmlinux.o" if objtool else
                          "objtool did not run on vmlinux.o (LTO postpones it there)"))
            if config.get("FTRACE_MCOUNT_USE_OBJTOOL") == "y":
                mcount = objtool is not None and "--mcount" in objtool.split()
                facts.append((mcount, "objtool --mcount on vmlinux.o" if mcount else
                              "objtool on vmlinux.o without --mcount: no ftrace call sites"))
        if lto == "thin":
            limit = re.search(r"-import-instr-limit=(\d+)", command)
            facts.append((limit is not None, f"ThinLTO import limit {limit.group(0)}" if limit
                          else "no -import-instr-limit in the vmlinux.o link"))
    if config.get("FTRACE_MCOUNT_RECORD") == "y":
        sites = mcount_locations(system_map)
        if sites is not None:
            facts.append(sites)
    placed = rodata_placement(system_map)
    if placed is not None:
        facts.append(placed)
    return facts


def objtool_warnings(build_log: Path | None) -> list[str]:
    """What objtool said about vmlinux.o while building: a decoding error (such as "can't
    find switch jump table") makes it skip its later passes, --mcount included, silently."""
    if build_log is None or not build_log.is_file():
        return []
    return [line.strip() for line in build_log.read_text(errors="replace").splitlines()
            if "vmlinux.o: warning: objtool:" in line]


@check("build_outputs", "objtool ran on vmlinux.o (with --mcount for ftrace), the ThinLTO "
       "import limit was passed, LKDTM's rodata function is in .rodata",
       evaluate=evaluate_build_outputs)
def build_outputs(guest: GuestProtocol, kernel: Kernel) -> Outcome:
    command = vmlinux_o_command(kernel.build_dir) if kernel.build_dir is not None else None
    system_map = kernel.system_map.read_text(errors="replace") \
        if kernel.system_map is not None and kernel.system_map.is_file() else ""
    facts = evaluate_build_outputs(command, kernel_config(kernel), kernel.arch, kernel.lto,
                                   system_map)
    if not facts:
        raise NotApplicable("nothing to read: no build directory (its .vmlinux.o.cmd) and "
                            f"no {RODATA_FUNCTION} in System.map")
    bad = [fact for ok, fact in facts if not ok]
    evidence = "\n".join(filter(None, [f"vmlinux.o: {command}" if command else "",
                                       *[fact for _, fact in facts],
                                       *objtool_warnings(kernel.build_log)]))
    if bad:
        return Outcome(False, "; ".join(bad), evidence)
    return Outcome(True, "; ".join(fact for _, fact in facts), evidence)
