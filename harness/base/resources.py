"""Files ltoboot ships: what goes into the guest (images/: our init, the probe modules' sources)
and our Kconfig fragments. In a checkout images/ is beside the package; installed, the wheel
carries it as harness/images."""

from __future__ import annotations

from pathlib import Path

from harness.base.errors import InfraError

_HERE = Path(__file__).resolve().parent.parent  # the package: harness/base/resources.py


def _images() -> Path:
    for candidate in (_HERE / "images", _HERE.parent / "images"):
        if (candidate / "init").is_file():
            return candidate
    raise InfraError(f"ltoboot's guest files (images/init) are missing next to {_HERE}: "
                     "reinstall ltoboot (pip install .)")


IMAGES = _images()
GUEST_INIT = IMAGES / "init"
MODULE_SOURCES = IMAGES / "modules"
TOOL_SOURCES = IMAGES / "tools"  # static guest programs, one C file each
KCONFIG_FRAGMENTS = _HERE / "kernel" / "configs"
