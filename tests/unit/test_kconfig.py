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


def test_the_tinyconfig_fragment_is_for_that_base_only() -> None:
    """x86_64's tinyconfig kernels take LZ4 (tinyconfig's XZ costs every boot under TCG); on
    any other base the tester's config keeps its compressor (build.plan passes the fragment
    for tinyconfig only)."""
    from harness.base.arch import ARCHES

    tiny = ARCHES["x86_64"].tinyconfig_fragment
    on_tiny = kconfig.wanted_options("x86_64.config", "thin", base_fragment=tiny)
    assert on_tiny["KERNEL_LZ4"] == "y" and on_tiny["KERNEL_XZ"] == "n"
    assert "KERNEL_LZ4" not in kconfig.wanted_options("x86_64.config", "thin")


def test_every_tool_our_fragments_make_kbuild_run_is_a_package_setup_installs() -> None:
    from harness.base.arch import ARCHES
    from harness.kernel import host_packages, toolchain

    installed = set(host_packages.debian_packages())
    for a in ARCHES.values():
        ours = kconfig.wanted_options(a.fragment, "thin", base_fragment=a.tinyconfig_fragment)
        for option, (tool, package) in toolchain.OPTION_TOOLS.items():
            if ours.get(option) == "y":
                assert package in installed, f"CONFIG_{option}=y needs {tool}: {package}"
