"""ltoboot: build, boot and check Clang LTO Linux kernels in QEMU."""

from __future__ import annotations

__version__ = "0.1.0"
