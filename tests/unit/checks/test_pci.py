"""pci_fixups: the verdicts on recorded initcall_debug lines of PCI fixups."""

from __future__ import annotations

from harness.checks.pci import evaluate_pci_fixups


def test_pci_fixup_verdicts() -> None:
    dmesg = ("[    0.21] pci 0000:00:00.0: calling  __UNIQUE_ID_quirk_mmio_always_on402+0x0/0x10"
             " @ 1\n[    0.22] pci 0000:00:1f.0: calling  __UNIQUE_ID_quirk_ich7_lpc613+0x0/0x10"
             " @ 1\n")
    ok, why = evaluate_pci_fixups(dmesg, "thin")
    assert ok and why.startswith("2 PCI fixups called through their __UNIQUE_ID_ stubs")
    assert not evaluate_pci_fixups("", "thin")[0]
    direct = dmesg.replace("__UNIQUE_ID_", "")
    ok, why = evaluate_pci_fixups(direct, "full")
    assert not ok and why.startswith("2 of 2 PCI fixups called without an __UNIQUE_ID_ stub")
    # without LTO the hooks are named directly: that is right there, and stubs are not
    assert evaluate_pci_fixups(direct, "none")[0]
    assert not evaluate_pci_fixups(dmesg, "none")[0]
