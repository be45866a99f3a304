"""initcall_order: names, levels and the comparison of LTO and non-LTO initcall traces."""

from __future__ import annotations

from harness.checks import initcall_order

MAP = """ffffffff82a1c3a0 d __initcall__kmod_core__312_1136_core_initearly
ffffffff82a1c3a4 d __initcall__kmod_fork__590_3090_alpha_init1
ffffffff82a1c3a8 d __initcall__kmod_fork__591_3101_beta_init1
ffffffff82a1c3ac d __initcall__kmod_tty__280_412_gamma_init26
ffffffff82a1c3b0 d __initcall__kmod_x__1_2_probes1s
ffffffff82a1c3b4 d __initcall__kmod_con__9_9_uart_con_initcon
"""


def test_names_and_levels() -> None:
    assert initcall_order.normalise("__initstub__kmod_fork__590_3090_alpha_init1") == "alpha_init"
    assert initcall_order.normalise("__initstub__kmod_tty__280_412_gamma_init26") == "gamma_init2"
    assert initcall_order.normalise("foo_init.llvm.123456") == "foo_init"
    assert initcall_order.table(MAP) == [("early", "core_init"), ("1", "alpha_init"),
                                    ("1", "beta_init"), ("6", "gamma_init2"), ("1s", "probes")]


def dmesg(names: list[str], lto: bool) -> str:
    out = []
    for i, n in enumerate(names):
        sym = f"__initstub__kmod_m__{i}_1_{n}6" if lto else n
        out.append(f"[    0.{i:06d}] calling  {sym}+0x0/0x2c @ 1")
        out.append(f"[    0.{i:06d}] initcall {sym}+0x0/0x2c returned 0 after {10 * i} usecs")
    return "\n".join(out)


def test_ran_keeps_order_return_and_duration() -> None:
    text = dmesg(["core_init", "alpha_init"], lto=True) + \
        "\n[ 1.0] calling  bad_init+0x0/0x1 @ 1\n[ 1.1] initcall bad_init+0x0/0x1 returned " \
        "-19 after 5 usecs"
    # PCI fixups trace themselves under initcall_debug too (as LTO's stubs, or not): not
    # initcalls, or a correct LTO kernel would differ from its reference (seen on Linux 6.1)
    text += "\n[ 1.2] pci 0000:00:00.0: calling  __UNIQUE_ID_quirk_mmio_always_on314+0x0/0x10 @ 1"
    calls = initcall_order.ran(text, initcall_order.table(MAP))
    assert [(c.name, c.level, c.ret, c.usecs) for c in calls] == [
        ("core_init", "early", 0, 0), ("alpha_init", "1", 0, 10), ("bad_init", "?", -19, 5)]


def test_identical_and_divergent_orders() -> None:
    order = ["core_init", "alpha_init", "beta_init", "gamma_init2"]
    same = initcall_order.compare(MAP, dmesg(order, True), MAP, dmesg(order, False))
    assert same.identical and same.counts == (5, 4, 4)
    assert "identical" in same.summary()
    swapped = ["core_init", "beta_init", "alpha_init", "gamma_init2"]
    diff = initcall_order.compare(MAP, dmesg(swapped, True), MAP, dmesg(order, False))
    assert not diff.identical
    (d,) = diff.divergences
    assert (d.what, d.level, d.index) == ("runtime", "1", 0)
    assert d.lto[:2] == ["beta_init", "alpha_init"]
    assert "runtime level 1 at #0" in diff.summary()
    missing = initcall_order.compare(MAP, dmesg(order[:3], True), MAP, dmesg(order, False))
    assert missing.only_ref == ["gamma_init2"]
    assert "gamma_init2" in initcall_order.durations_table(same)


def test_errors_count_against_lto_only_when_they_differ() -> None:
    order = ["core_init", "alpha_init"]
    both = dmesg(order, True).replace("returned 0 after 10", "returned -19 after 10")
    ref = dmesg(order, False).replace("returned 0 after 10", "returned -19 after 10")
    same = initcall_order.compare(MAP, both, MAP, ref)
    assert same.errors and same.passed and not same.error_mismatch
    only_lto = initcall_order.compare(MAP, both, MAP, dmesg(order, False))
    assert only_lto.identical and not only_lto.passed
    assert only_lto.error_mismatch == ["alpha_init: -19 in LTO, 0 in no LTO"]
