"""What setup.sh installs comes from harness/kernel/host_packages.py, which it runs with Debian's
python3 before any venv exists: the modules it names answer, with the standard library
alone, and the list holds what the docs say it does."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setup_asks() -> list[list[str]]:
    """The `python -m MODULE ARGS` commands of setup.sh ($LLVM left out: the default)."""
    found = re.findall(r'"\$PY" -m (\S+) ([^)"]+?)(?: "\$LLVM")?\)',
                       (ROOT / "setup.sh").read_text())
    return [[module, *args.split()] for module, args in found]


def test_setup_s_questions_are_answered_by_the_standard_library_alone() -> None:
    asks = _setup_asks()
    assert [a[1] for a in asks] == ["packages", "foreign-arches"]
    for module, *args in asks:
        # -S: no site-packages, as Debian's python3 has none of ours before the venv
        out = subprocess.run([sys.executable, "-S", "-m", module, *args], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
        assert out, module
        if args == ["packages"]:
            assert {"clang-19", "clang-14", "linux-source-6.1", "linux-source-6.12",
                    "lava-dispatcher", "busybox-static"} <= set(out)
