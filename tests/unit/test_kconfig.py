"""Kconfig as text: parsing and rendering round-trip, our options applied and checked, the LTO mode
and the arch's console wanted, renamed symbols followed."""

from __future__ import annotations

from harness.kernel import kconfig


def test_parse_and_render_roundtrip() -> None:
    text = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=\"x y\"\n# comment\n"
    values = kconfig.parse(text)
    assert values == {"A": "y", "B": "n", "C": '"x y"'}
    assert kconfig.parse(kconfig.render(values)) == values


def test_apply_replaces_our_symbols_only() -> None:
    out = kconfig.apply("CONFIG_A=n\n# CONFIG_B is not set\nCONFIG_D=y\n", {"B": "y"})
    assert kconfig.parse(out) == {"A": "n", "B": "y", "D": "y"}


def test_dropped_options_are_named() -> None:
    # what tinyconfig really did to TEST_LKM before RUNTIME_TESTING_MENU was in our fragment
    wanted = {"TEST_LKM": "m", "MODULES": "y", "LTO_NONE": "n"}
    actual = {"MODULES": "y"}
    assert kconfig.not_stuck(wanted, actual) == ["CONFIG_TEST_LKM=m (got: not set)"]


def test_wanted_options_carry_lto_mode_and_arch_console() -> None:
    thin = kconfig.wanted_options("x86_64.config", "thin")
    assert thin["LTO_CLANG_THIN"] == "y" and thin["SERIAL_8250_CONSOLE"] == "y"
    assert thin["MODVERSIONS"] == "y" and thin["IKCONFIG_PROC"] == "y"
    none = kconfig.wanted_options("arm64.config", "none")
    assert none["LTO_NONE"] == "y" and "LTO_CLANG_THIN" not in none


def test_renamed_symbols_follow_the_source() -> None:
    old, new = frozenset({"RETPOLINE"}), frozenset({"MITIGATION_RETPOLINE"})
    assert kconfig.follow_renames({"RETPOLINE": "y", "PRINTK": "y"}, new) == \
        {"MITIGATION_RETPOLINE": "y", "PRINTK": "y"}
    assert kconfig.follow_renames({"MITIGATION_RETPOLINE": "y"}, old) == {"RETPOLINE": "y"}
    assert kconfig.follow_renames({"RETPOLINE": "y"}, old) == {"RETPOLINE": "y"}
