"""A tester's distribution config as --config: Debian's linux-config-* (xz), /proc/config.gz,
/boot/config-*; what ltoboot clears from it before Kconfig, what Kconfig does not keep, and
how the report says both. No make, no source tree: synthetic files and dicts."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import subprocess
from pathlib import Path

import pytest

from harness.base.errors import InfraError, UsageError
from harness.kernel import build, host_packages, kconfig, toolchain
from harness.kernel.model import BuildSpec, Kernel
from harness.reports.tested_by import facts_for_tested_by
from harness.reports.text import SHOWN_DROPPED, config_lines
from harness.runs import options

DEBIAN = ('CONFIG_X86_64=y\nCONFIG_MODULES=y\nCONFIG_MODULE_SIG=y\n'
          'CONFIG_SYSTEM_TRUSTED_KEYS="debian/certs/debian-uefi-certs.pem"\n'
          'CONFIG_MODULE_SIG_KEY="certs/signing_key.pem"\nCONFIG_DEBUG_INFO_BTF=y\n')


def _files(tmp_path: Path) -> dict[str, Path]:
    plain = tmp_path / "config-6.1.0-amd64"
    plain.write_text(DEBIAN)
    xz = tmp_path / "config.amd64_none_amd64.xz"
    xz.write_bytes(lzma.compress(DEBIAN.encode()))
    gz = tmp_path / "config.gz"
    gz.write_bytes(gzip.compress(DEBIAN.encode()))
    bz = tmp_path / "config.bz2"
    bz.write_bytes(bz2.compress(DEBIAN.encode()))
    return {"plain": plain, "xz": xz, "gz": gz, "bz2": bz}


def test_an_xz_or_gzip_config_reads_as_the_config_it_holds(tmp_path: Path) -> None:
    files = _files(tmp_path)
    ids = {build.base_config_identity(BuildSpec("x86_64", config=str(f))) for f in files.values()}
    # one config however compressed; a plain file keeps the key it had (sha256 of its bytes)
    assert ids == {f"file:{hashlib.sha256(DEBIAN.encode()).hexdigest()}"}
    for f in files.values():
        assert build._base_file(BuildSpec("x86_64", config=str(f))) == DEBIAN
        assert options.base_config(str(f), ("x86_64",)) == str(f.resolve())
    with pytest.raises(UsageError, match=r"is a \.config for x86_64 .*give --arch x86_64"):
        options.base_config(str(files["xz"]), ("arm64",))


@pytest.mark.parametrize("name, data, says", [
    ("config.xz", lzma.compress(DEBIAN.encode())[:-20], "damaged xz data"),
    ("config.gz", gzip.compress(DEBIAN.encode())[:-6], "damaged gzip data"),
    ("config.gz", b"\x1f\x8b\x08\x00" + b"\xff" * 40, "damaged gzip data"),
    ("config.xz", DEBIAN.encode(), "is named .xz but is not xz data"),
    ("config.bz2", bz2.compress(DEBIAN.encode())[:-10], "damaged bzip2 data"),
    ("config.zst", subprocess.run(["zstd", "-c"], input=DEBIAN.encode(), capture_output=True,
                                  check=True).stdout, r"zstd-compressed.*zstd -dc FILE > config"),
    ("config.lz4", subprocess.run(["lz4", "-c"], input=DEBIAN.encode(), capture_output=True,
                                  check=True).stdout, r"is LZ4-compressed.*lz4 -dc FILE > config"),
    ("config", b"\x50\x2a\x4d\x18" + bytes(20), "is zstd-compressed"),  # pzstd's
    ("config", subprocess.run(["lz4", "-l", "-c"], input=DEBIAN.encode(), capture_output=True,
                              check=True).stdout, "is LZ4-compressed"),  # the legacy frame
], ids=["xz-cut", "gz-cut", "gz-garbage", "xz-plain", "bz2-cut", "zstd", "lz4", "pzstd",
        "lz4-legacy"])
# (gzip's bytes carry the time: xdist workers must collect the same ids)
def test_a_damaged_compressed_config_is_one_line_naming_the_fix(
        tmp_path: Path, name: str, data: bytes, says: str) -> None:
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(UsageError, match=says) as e:
        options.base_config(str(f), ("x86_64",))  # the option, before anything runs
    assert "\n" not in str(e.value) and str(f) in str(e.value)
    assert any(fix in str(e.value) for fix in ("copy it again", "give the .config"))
    with pytest.raises(UsageError, match=says):
        build._base_file(BuildSpec("x86_64", config=str(f)))  # and the build's own check


def test_what_a_file_is_counts_not_its_name(tmp_path: Path) -> None:
    misnamed = tmp_path / "config.xz"  # gzip data under an xz name: read as what it is
    misnamed.write_bytes(gzip.compress(DEBIAN.encode()))
    assert build._base_file(BuildSpec("x86_64", config=str(misnamed))) == DEBIAN


def test_a_compressed_file_that_holds_no_config_is_not_one(tmp_path: Path) -> None:
    f = tmp_path / "notes.xz"
    f.write_bytes(lzma.compress(b"shopping list\n"))
    with pytest.raises(UsageError, match="is not a kernel config"):
        build._base_file(BuildSpec("x86_64", config=str(f)))


def _tree(tmp_path: Path, *files: str) -> Path:
    tree = tmp_path / "linux"
    for rel in files:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("-----BEGIN CERTIFICATE-----\n")
    tree.mkdir(exist_ok=True)
    return tree


def test_an_option_naming_a_file_the_source_does_not_ship_is_cleared(tmp_path: Path) -> None:
    keys = '"debian/certs/debian-uefi-certs.pem"'
    values = {"SYSTEM_TRUSTED_KEYS": keys, "MODULE_SIG_KEY": '"certs/signing_key.pem"',
              "SYSTEM_BLACKLIST_HASH_LIST": '""', "MODULES": "y"}
    bare = _tree(tmp_path)
    assert kconfig.unbuildable(values, bare) == {"SYSTEM_TRUSTED_KEYS": keys}
    # the tester's tree ships it (a Debian source package's debian/ does): kept
    shipped = _tree(tmp_path / "deb", "debian/certs/debian-uefi-certs.pem")
    assert kconfig.unbuildable(values, shipped) == {}


def test_where_each_file_option_is_looked_for(tmp_path: Path) -> None:
    mine = tmp_path / "keys" / "mine.pem"
    mine.parent.mkdir()
    mine.write_text("key\n")
    tree = _tree(tmp_path, "certs/mine.pem", "certs/hashes.txt", "certs/revoked.pem")
    values = {
        "MODULE_SIG_KEY": '"certs/mine.pem"',  # sign-file reads it from the build directory
        "SYSTEM_BLACKLIST_HASH_LIST": '"certs/hashes.txt"',  # so does cat: not the source's
        "SYSTEM_REVOCATION_KEYS": '"certs/revoked.pem"',  # make finds it in the source: kept
        "SYSTEM_TRUSTED_KEYS": f'"{mine}"',  # an absolute name that is there: kept
    }
    assert kconfig.unbuildable(values, tree) == {
        "MODULE_SIG_KEY": '"certs/mine.pem"', "SYSTEM_BLACKLIST_HASH_LIST": '"certs/hashes.txt"'}
    assert kconfig.unbuildable({"SYSTEM_TRUSTED_KEYS": '"/nowhere/keys.pem"',
                                "MODULE_SIG_KEY": '"pkcs11:token=kernel;object=key"'},
                               tree) == {"SYSTEM_TRUSTED_KEYS": '"/nowhere/keys.pem"'}
    assert kconfig.string_value('"a \\"quoted\\" \\\\ name"') == 'a "quoted" \\ name'
    assert kconfig.string_value("y") is None


def test_a_cleared_base_starts_without_those_lines_and_names_another_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain, "_present", lambda tool: True)
    files = _files(tmp_path)
    tree = _tree(tmp_path)
    spec = BuildSpec("x86_64", config=str(files["xz"]))
    text, cleared = build.base_cleared(spec, tree)
    assert cleared == {"SYSTEM_TRUSTED_KEYS": '"debian/certs/debian-uefi-certs.pem" (names a '
                                              'file this build has not got)'}
    assert text == DEBIAN.replace('CONFIG_SYSTEM_TRUSTED_KEYS="debian/certs/debian-uefi-'
                                  'certs.pem"\n', "")
    assert build.base_key_parts(spec, tree) == {
        "base": build.base_config_identity(spec), "cleared": ["SYSTEM_TRUSTED_KEYS"]}
    # nothing cleared: the key's parts are what they were before clearing existed
    shipped = _tree(tmp_path / "deb", "debian/certs/debian-uefi-certs.pem")
    assert build.base_cleared(spec, shipped) == (DEBIAN, {})
    assert build.base_key_parts(spec, shipped) == {"base": build.base_config_identity(spec)}
    assert build.base_key_parts(BuildSpec("x86_64", config="defconfig"), tree) == \
        {"base": "defconfig"}


def test_what_kconfig_did_not_keep_of_a_base_leaves_out_toolchain_facts_and_ours() -> None:
    base = {"CC_IS_GCC": "y", "GCC_VERSION": "120200", "CC_VERSION_TEXT": '"gcc-12"',
            "PAHOLE_VERSION": "124", "AS_AVX512": "y", "HAVE_GCC_PLUGINS": "y",
            "GCC11_NO_ARRAY_BOUNDS": "y", "PAHOLE_HAS_SPLIT_BTF": "y",
            "GCC_PLUGINS": "y", "GCC_PLUGIN_LATENT_ENTROPY": "y",
            "DEBUG_INFO_BTF_MODULES": "y", "X86_X32_ABI": "y", "USB_STORAGE": "m",
            "LSM": '"landlock,yama"', "INITRAMFS_SOURCE": '""', "KASAN": "n",
            "LTO_NONE": "y", "MODULES": "y", "LOG_BUF_SHIFT": "18"}
    after = {"CC_IS_CLANG": "y", "CLANG_VERSION": "190107", "PAHOLE_VERSION": "0",
             "USB_STORAGE": "m", "LSM": '"landlock"', "LTO_CLANG_THIN": "y",
             "MODULES": "y", "LOG_BUF_SHIFT": "17"}
    ours = {"LTO_CLANG_THIN", "LTO_NONE", "LTO_CLANG", "LOG_BUF_SHIFT", "MODULES"}
    assert kconfig.lost(base, after, ours) == [
        "DEBUG_INFO_BTF_MODULES", "GCC_PLUGINS", "GCC_PLUGIN_LATENT_ENTROPY", "LSM",
        "X86_X32_ABI"]
    said = build.changed_in_base(base, {"SYSTEM_TRUSTED_KEYS": '"debian/x.pem"'}, after, ours)
    assert said == {"config_cleared": 'CONFIG_SYSTEM_TRUSTED_KEYS="debian/x.pem"',
                    "config_dropped": "CONFIG_DEBUG_INFO_BTF_MODULES CONFIG_GCC_PLUGINS "
                                      "CONFIG_GCC_PLUGIN_LATENT_ENTROPY CONFIG_LSM "
                                      "CONFIG_X86_X32_ABI"}


def _kernel(extra: dict[str, str]) -> Kernel:
    return Kernel(arch="x86_64", lto="thin", release="6.1.192", image=Path("/k/bzImage"),
                  config=Path("/k/.config"), system_map=None, modules=None, build_dir=None,
                  source_tree=None, compiler="clang 19", linker="LLD 19", llvm_major=19,
                  source="linux-source-6.1.tar.xz", key="k", extra=extra)


def test_the_report_names_what_was_cleared_and_a_few_of_what_was_not_kept() -> None:
    dropped = [f"CONFIG_OPTION_{i:02}" for i in range(SHOWN_DROPPED + 3)]
    k = _kernel({"config_base": "config.amd64_none_amd64.xz",
                 "config_added": "CONFIG_LTO_CLANG_THIN=y CONFIG_LKDTM=y",
                 "config_not_added": "",
                 "config_cleared": 'CONFIG_SYSTEM_TRUSTED_KEYS="debian/certs/x.pem"',
                 "config_dropped": " ".join(dropped)})
    lines = config_lines(k)
    assert lines[0] == ("config: config.amd64_none_amd64.xz, with 2 options added by ltoboot: "
                        "CONFIG_LTO_CLANG_THIN=y CONFIG_LKDTM=y")
    assert lines[1].startswith("config: cleared from the base by ltoboot") and \
        lines[1].endswith(': CONFIG_SYSTEM_TRUSTED_KEYS="debian/certs/x.pem"')
    assert lines[2].startswith(f"config: Kconfig did not keep {len(dropped)} options the base "
                               "set (re-evaluated with clang 19 and this machine's tools): ")
    assert " ".join(dropped[:SHOWN_DROPPED]) + " and 3 more (all of them: ltoboot " \
        "tested-by --format json)" in lines[2] and dropped[SHOWN_DROPPED] not in lines[2]
    assert len(lines) == 3
    from harness.reports.results import KernelReport
    facts = facts_for_tested_by([KernelReport(label="x86_64-thin", kernel=k)], "T", "t@x")
    arch = facts["arches"][0]  # type: ignore[index]
    assert arch["config"] == lines and arch["config_dropped"] == dropped
    # a base with nothing cleared or lost, or a build from tinyconfig, says nothing more
    assert len(config_lines(_kernel({"config_base": "defconfig", "config_added": ""}))) == 1
    assert config_lines(_kernel({})) == []


def test_files_of_this_machine_built_in_are_cleared(tmp_path: Path) -> None:
    """Firmware and an initramfs from this machine's files: no key could follow them."""
    config = tmp_path / "config"
    config.write_text('CONFIG_X86_64=y\nCONFIG_EXTRA_FIRMWARE="i915/tgl_dmc.bin"\n'
                      'CONFIG_INITRAMFS_SOURCE="/srv/initramfs usr/list"\n'
                      'CONFIG_EXTRA_FIRMWARE_DIR="/lib/firmware"\n')
    spec = BuildSpec("x86_64", config=str(config))
    text, cleared = build.base_cleared(spec, _tree(tmp_path))
    assert sorted(cleared) == ["EXTRA_FIRMWARE", "INITRAMFS_SOURCE"]
    assert "files of this machine" in cleared["INITRAMFS_SOURCE"]
    assert text == 'CONFIG_X86_64=y\nCONFIG_EXTRA_FIRMWARE_DIR="/lib/firmware"\n'
    # what exists only with them is no loss Kconfig made
    said = build.changed_in_base(kconfig.parse(text), cleared, {"X86_64": "y"}, set())
    assert said["config_dropped"] == ""
    assert build.changed_in_base(kconfig.parse(text), {}, {"X86_64": "y"}, set()) == {
        "config_cleared": "", "config_dropped": "CONFIG_EXTRA_FIRMWARE_DIR"}
    # Debian's, empty: nothing cleared, the key as it was
    config.write_text('CONFIG_X86_64=y\nCONFIG_EXTRA_FIRMWARE=""\nCONFIG_INITRAMFS_SOURCE=""\n')
    assert build.base_cleared(spec, _tree(tmp_path))[1] == {}
    assert "cleared" not in build.base_key_parts(spec, _tree(tmp_path))


def test_a_config_that_needs_a_tool_this_machine_lacks_fails_before_the_compile(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What Kconfig itself turned on: an error before the compile. What the base set: cleared
    from it, saying why (test_a_base_option_whose_tool_is_missing_is_cleared_with_why)."""
    monkeypatch.setattr(toolchain, "_present", lambda tool: tool != "pahole")
    toolchain.require_for({"MODULE_SIG": "y", "DEBUG_INFO_BTF": "n"})
    with pytest.raises(InfraError, match=r"^missing pahole \(CONFIG_DEBUG_INFO_BTF=y needs it\): "
                       r"run \./setup\.sh or apt-get install pahole$"):
        toolchain.require_for(kconfig.parse(DEBIAN))
    packages = set(host_packages.debian_packages())
    # pahole would change every build's .config (CONFIG_PAHOLE_VERSION) under cached keys
    assert {"openssl", "linux-config-6.1"} <= packages and "pahole" not in packages


def test_a_base_option_whose_tool_is_missing_is_cleared_with_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain, "_present", lambda tool: tool != "pahole")
    config = tmp_path / "config"
    config.write_text("CONFIG_X86_64=y\nCONFIG_DEBUG_INFO_BTF=y\nCONFIG_MODULE_SIG=y\n")
    spec = BuildSpec("x86_64", config=str(config))
    text, cleared = build.base_cleared(spec, _tree(tmp_path))
    assert cleared == {"DEBUG_INFO_BTF": "y (pahole is not installed)"}
    assert text == "CONFIG_X86_64=y\nCONFIG_MODULE_SIG=y\n"
    assert build.base_key_parts(spec, _tree(tmp_path))["cleared"] == ["DEBUG_INFO_BTF"]
    said = build.changed_in_base(kconfig.parse(config.read_text()), cleared, {}, set())
    assert said["config_cleared"] == "CONFIG_DEBUG_INFO_BTF=y (pahole is not installed)"
    monkeypatch.setattr(toolchain, "_present", lambda tool: True)
    assert build.base_cleared(spec, _tree(tmp_path)) == (config.read_text(), {})


def test_a_key_file_from_outside_the_tree_is_part_of_the_build_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hostile review: MODULE_SIG_KEY naming an absolute file kept the key when the file
    changed, and the cache would have served modules signed with the old key."""
    monkeypatch.setattr(toolchain, "_present", lambda tool: True)
    pem = tmp_path / "my key.pem"
    pem.write_text("KEY ONE\n")
    config = tmp_path / "config"
    config.write_text(f'CONFIG_X86_64=y\nCONFIG_MODULE_SIG_KEY="{pem}"\n')
    spec = BuildSpec("x86_64", config=str(config))
    tree = _tree(tmp_path)
    one = build.base_key_parts(spec, tree)
    pem.write_text("KEY TWO\n")
    two = build.base_key_parts(spec, tree)
    assert one != two and set(one) == {"base", "files"}
    # a base naming no such file keeps the parts it always had
    config.write_text("CONFIG_X86_64=y\n")
    assert build.base_key_parts(spec, tree) == {"base": build.base_config_identity(spec)}
