"""A tester's distribution config as --config: Debian's linux-config-* (xz), /proc/config.gz,
/boot/config-*. No make, no source tree: synthetic files."""

from __future__ import annotations

import gzip
import hashlib
import lzma
from pathlib import Path

import pytest

from harness.base.errors import UsageError
from harness.kernel import build
from harness.kernel.model import BuildSpec
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
    return {"plain": plain, "xz": xz, "gz": gz}


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
])
def test_a_damaged_compressed_config_is_one_line_naming_the_fix(
        tmp_path: Path, name: str, data: bytes, says: str) -> None:
    f = tmp_path / name
    f.write_bytes(data)
    with pytest.raises(UsageError, match=says) as e:
        options.base_config(str(f), ("x86_64",))  # the option, before anything runs
    assert "\n" not in str(e.value) and str(f) in str(e.value)
    assert "copy it again" in str(e.value) or "give the .config" in str(e.value)
    with pytest.raises(UsageError, match=says):
        build._base_file(BuildSpec("x86_64", config=str(f)))  # and the build's own check


def test_a_compressed_file_that_holds_no_config_is_not_one(tmp_path: Path) -> None:
    f = tmp_path / "notes.xz"
    f.write_bytes(lzma.compress(b"shopping list\n"))
    with pytest.raises(UsageError, match="is not a kernel config"):
        build._base_file(BuildSpec("x86_64", config=str(f)))

