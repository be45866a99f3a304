"""What makes two builds of one kernel the same kernel, for the tests that build one twice
(from nothing and from the nearest build; with and without ccache).

The release, the whole .config, every symbol of System.map by type and name, every check's
verdict, and what the console said. A promoted static's ThinLTO suffix (`.llvm.<hash>`) is
compared without its hash: the hash follows its object's bitcode, which carries inline asm's
source-location cookies (byte offsets into the file and its headers, for diagnostics), and
ccache serves an object compiled where a header differed in length but not in what it
preprocesses to (seen: pci.o from the pci-fixups variant's tree, 4 bytes apart in 13 cookies,
the code the same). Addresses move with the names' lengths and are not compared.
"""

from __future__ import annotations

import re

from harness.checks import run_checks
from harness.guest import boot
from harness.kernel.model import Kernel

LLVM_HASH = re.compile(r"\.llvm\.\d+")


def names(kernel: Kernel) -> list[str]:
    assert kernel.system_map is not None
    return sorted(LLVM_HASH.sub(".llvm.*", " ".join(line.split()[1:3]))
                  for line in kernel.system_map.read_text().splitlines())


def facts(kernel: Kernel, console_says: str = ""
          ) -> tuple[str, str, list[str], list[tuple[str, str]], bool]:
    """(release, .config, names, verdicts, whether the console said `console_says`)."""
    guest = boot.boot(boot.BootRequest(kernel))
    try:
        verdicts = [(r.name, r.verdict.value) for r in run_checks(guest, kernel)]
        said = console_says in guest.log.read_text(errors="replace")
    finally:
        guest.close()
    return kernel.release, kernel.config.read_text(), names(kernel), verdicts, said
