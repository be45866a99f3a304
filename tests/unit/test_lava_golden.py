"""Golden job definitions, one per LAVA job shape ltoboot writes (as tuxlava keeps its
reference jobs): x86_64's main job and its two crash jobs, arm64's main job booted through
UEFI firmware, and a job with nothing to type. A change to a check's commands, the framing,
the device context or the deploy shows here as a diff of exactly what every lab would run.
After a deliberate change: LTOBOOT_UPDATE_GOLDEN=1 pytest tests/unit/test_lava_golden.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from harness.base import needs
from harness.base.arch import ARCHES
from harness.kernel import kconfig
from harness.kernel.model import Kernel
from harness.runs.lava import export, plan

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "lava" / "golden"
SUMS = {"kernel": "1" * 64, "ramdisk": "2" * 64, "firmware": "3" * 64}
FIRMWARE = {"arm64": "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd", "x86_64": ""}


def kernel(tmp: Path, arch: str) -> Kernel:
    """A kernel as ltoboot builds it (its config: our fragment, the LTO mode and every option
    a check needs), fixed in every field a job carries."""
    options, _ = needs.build_options(19, "Debian clang version 19.1.7", arch=arch, lto="thin",
                                     defined=None, version="6.1.192")
    config = tmp / f"{arch}.config"
    config.write_text(kconfig.render(kconfig.wanted_options(ARCHES[arch].fragment, "thin",
                                                            [], options)))
    smap = tmp / "System.map"
    smap.write_text("ffffffff81000100 t alpha.llvm.111\nffffffff81000200 t beta.llvm.222\n")
    return Kernel(arch=arch, lto="thin", release="6.1.192", image=tmp / "Image",
                  config=config, system_map=smap, modules=None, build_dir=tmp, source_tree=None,
                  compiler="Debian clang version 19.1.7", linker="Debian LLD 19.1.7",
                  llvm_major=19, source="golden", key=f"golden-{arch}")


def shapes(tmp: Path) -> dict[str, str]:
    found = {}
    for arch in ("x86_64", "arm64"):
        k = kernel(tmp, arch)
        firmware = FIRMWARE[arch]
        base = f"https://lab.example/ltoboot/{arch}-thin-{k.key}/"
        for name, _, definition in export.definitions(
                k, plan.make(k, firmware=firmware), kernel_url=base + "Image",
                initrd_url=base + "initramfs.cpio",
                firmware_url=base + "QEMU_EFI.fd" if firmware else "", sha256=SUMS):
            if arch == "arm64" and name:  # the crash jobs' shape is x86_64's
                continue
            found[f"{arch}-{name or 'main'}.yaml"] = export.dump(definition)
    k = kernel(tmp, "x86_64")
    empty = plan.make(k, ["efi_stub"])  # a check that types nothing on x86_64: boot only
    ((_, _, definition),) = export.definitions(
        k, empty, kernel_url="file:///lab dir/bzImage", initrd_url="file:///lab dir/i.cpio",
        firmware_url="", sha256=SUMS)
    found["x86_64-nothing-to-type.yaml"] = export.dump(definition)
    return found


def test_every_job_shape_is_its_golden_file(tmp_path: Path) -> None:
    made = shapes(tmp_path)
    assert set(made) == {"x86_64-main.yaml", "x86_64-cfi.yaml", "x86_64-lkdtm_rodata.yaml",
                         "arm64-main.yaml", "x86_64-nothing-to-type.yaml"}
    if os.environ.get("LTOBOOT_UPDATE_GOLDEN"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        for name, text in made.items():
            (GOLDEN / name).write_text(text)
    for name, text in made.items():
        assert (GOLDEN / name).read_text() == text, f"{name} changed: see git diff after " \
            "LTOBOOT_UPDATE_GOLDEN=1"
    assert sorted(p.name for p in GOLDEN.iterdir()) == sorted(made)


@pytest.mark.skipif(not Path(export.SYSTEM_PYTHON).is_file(), reason="no Debian python3")
def test_golden_jobs_pass_lavas_strict_schema() -> None:
    paths = sorted(GOLDEN.glob("*.yaml"))
    for p in paths:
        assert yaml.safe_load(p.read_text())["device_type"] == "qemu"
    if not export.validate(paths):
        pytest.skip("lava_common is not installed (./setup.sh installs lava-dispatcher)")
