"""What LTO can break, each shown on a real kernel that is broken that way (issue: LTO depth).

The broken kernels are incremental variants of the default build (harness/variants.py).
"""

from __future__ import annotations

import dataclasses
import re

import pytest

from harness.checks import run_check, run_checks
from harness.checks.initcall_report import compare_guests
from harness.faces.pytest_plugin.fixtures import Guests, Kernels
from harness.kernel.variants import build_variant

pytestmark = [pytest.mark.boot, pytest.mark.ltoboot_group("none")]


def test_initcall_order_matches_the_non_lto_build(kernels: Kernels, guests: Guests,
                                                  primary_arch: str, record_property: object
                                                  ) -> None:
    thin, none = kernels.get(arch=primary_arch), kernels.get(arch=primary_arch, lto="none")
    report = compare_guests((thin, guests.get(thin)), (none, guests.get(none)))
    c = report.comparison
    print(c.summary(), f"report: {report.directory}", sep="\n")
    assert c.identical, c.summary() + "\n" + c.details()
    assert not c.error_mismatch, c.error_mismatch
    n_table, n_lto, n_ref = c.counts
    assert n_table > 50 and n_lto > 50 and n_lto == n_ref, c.counts
    assert (report.directory / "durations.svg").stat().st_size > 500


def test_reversed_initcall_order_is_caught(kernels: Kernels, guests: Guests,
                                           primary_arch: str) -> None:
    broken = build_variant(kernels.get(arch=primary_arch), "initcalls-reversed")
    none = kernels.get(arch=primary_arch, lto="none")
    report = compare_guests((broken, guests.boot(broken)), (none, guests.get(none)))
    c = report.comparison
    assert not c.identical, "the reversed order went unnoticed"
    assert any(d.what == "table" for d in c.divergences)
    assert any(d.what == "runtime" for d in c.divergences)
    assert "differs" in c.summary() and "level" in c.summary()


def test_every_check_passes_or_skips_on_the_non_lto_kernel(kernels: Kernels, guests: Guests,
                                                           primary_arch: str) -> None:
    """No false verdicts on the other side: the same tree and config without LTO is a correct
    kernel too (its PCI fixups name the hooks, objtool runs per object, no .llvm. names)."""
    none = kernels.get(arch=primary_arch, lto="none")
    results = run_checks(guests.get(none), none)
    bad = [f"{r.name}: {r.summary}\n{r.evidence}" for r in results if not r.passed]
    assert not bad, "\n".join(bad)
    assert {r.name for r in results if r.skipped} <= {"kvm_nvhe", "efi_stub", "pci_fixups"}


def test_lto_evidence_on_a_non_lto_kernel(kernels: Kernels, guests: Guests,
                                          primary_arch: str) -> None:
    none = kernels.get(arch=primary_arch, lto="none")
    guest = guests.get(none)
    # what the kernel is: no LTO note, no .llvm. names: both checks pass for "none" ...
    assert run_check("lto_elf_note", guest, none).passed
    assert run_check("llvm_symbols", guest, none).passed
    # ... and the note check fails when the same real kernel is claimed to be ThinLTO
    claimed = run_check("lto_elf_note", guest, dataclasses.replace(none, lto="thin"))
    assert not claimed.passed and "the note says no LTO" in claimed.summary


@pytest.mark.ltoboot_group()
def test_lost_crcs_are_caught(kernels: Kernels, guests: Guests, primary_arch: str) -> None:
    broken = build_variant(kernels.get(arch=primary_arch), "crcs-lost")
    guest = guests.boot(broken)
    crcs = run_check("symvers_crcs", guest, broken)
    assert not crcs.passed
    assert re.fullmatch(r"(\d+) of \1 CRCs are zero", crcs.summary), crcs.summary
    assert "(vmlinux)" in crcs.evidence
    versions = run_check("modversions", guest, broken)
    assert not versions.passed and "lost its CRCs" in versions.summary, versions.summary


@pytest.mark.ltoboot_group()
def test_ignored_crc_mismatch_is_caught(kernels: Kernels, guests: Guests,
                                        primary_arch: str) -> None:
    broken = build_variant(kernels.get(arch=primary_arch), "versions-unchecked")
    guest = guests.boot(broken)
    result = run_check("modversions", guest, broken)
    assert not result.passed
    assert result.summary == "the module with a wrong CRC for ltoboot_probe_value was loaded"
    # the CRCs themselves are fine: only the loader is broken
    assert run_check("symvers_crcs", guest, broken).passed

