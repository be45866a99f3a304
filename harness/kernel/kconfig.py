"""Kconfig fragments: parse, merge, and verify that what we asked for stuck after olddefconfig."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.base import cache, needs, resources
from harness.base.errors import UsageError
from harness.kernel.model import lto_mode

_SET = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# CONFIG_([A-Za-z0-9_]+) is not set$")

_DEFINES = re.compile(r"^[ \t]*(?:menu)?config[ \t]+([A-Za-z0-9_]+)[ \t]*$", re.M)

CONFIG_DIR = resources.KCONFIG_FRAGMENTS


def parse(text: str) -> dict[str, str]:
    """Map symbol (without CONFIG_) to its value; `is not set` becomes "n"."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def merge(fragments: Iterable[str]) -> dict[str, str]:
    """Later fragments win, as with scripts/kconfig/merge_config.sh."""
    merged: dict[str, str] = {}
    for text in fragments:
        merged.update(parse(text))
    return merged


def render(values: Mapping[str, str]) -> str:
    return "".join(
        f"# CONFIG_{k} is not set\n" if v == "n" else f"CONFIG_{k}={v}\n" for k, v in values.items()
    )


def apply(base_config: str, wanted: Mapping[str, str]) -> str:
    """Drop every line of `base_config` that sets a wanted symbol and append ours."""
    kept = []
    for line in base_config.splitlines():
        m = _SET.match(line.strip()) or _UNSET.match(line.strip())
        if m and m.group(1) in wanted:
            continue
        kept.append(line)
    return "\n".join(kept) + "\n" + render(wanted)


def not_stuck(wanted: Mapping[str, str], actual: Mapping[str, str]) -> list[str]:
    """Options we asked for that Kconfig silently changed, as `CONFIG_X=want (got: value)`."""
    problems = []
    for sym, want in wanted.items():
        got = actual.get(sym, "n")
        if got != want:
            shown = "not set" if got == "n" else got
            problems.append(f"CONFIG_{sym}={want} (got: {shown})")
    return problems


def wanted_options(arch_fragment: str, lto: str, extra: Iterable[Path] = (),
                   checks: Mapping[str, str] | None = None, base_fragment: str = ""
                   ) -> dict[str, str]:
    """Our fragments (`base_fragment`: the arch's for the base config at hand, if any), what
    the checks need (`checks`; default: every check's, whatever the toolchain), the LTO mode's
    option, then the user's fragments (which win)."""
    if checks is None:
        checks = needs.build_options(clang_major=10**6, clang="any")[0]
    ours = [arch_fragment, *([base_fragment] if base_fragment else [])]
    texts = [(CONFIG_DIR / "base.config").read_text(),
             *((CONFIG_DIR / name).read_text() for name in ours),
             render(checks), render(lto_mode(lto).request)]
    texts.extend(p.read_text() for p in extra)
    return merge(texts)


# Kconfig symbols renamed upstream, old name -> new name (the Linux release that renamed them):
# a fragment may use either, the build asks for the one the source defines.
RENAMED = {
    "RETPOLINE": "MITIGATION_RETPOLINE",  # 6.9
    "RETHUNK": "MITIGATION_RETHUNK",  # 6.9
}


def follow_renames(wanted: Mapping[str, str], defined: frozenset[str]) -> dict[str, str]:
    """`wanted` with each renamed symbol under the name this source defines."""
    either = {**RENAMED, **{new: old for old, new in RENAMED.items()}}
    out: dict[str, str] = {}
    for sym, value in wanted.items():
        other = either.get(sym)
        out[other if sym not in defined and other in defined else sym] = value
    return out


_DEFINED: dict[tuple[str, str], frozenset[str]] = {}


# a record's first line: a change to what _walk_symbols reads must change it
_SYMBOLS_FORMAT = "ltoboot kconfig symbols 1"
# records kept (about 260 KB each): a series, a bisect step or an edited tree is a new identity
SYMBOL_RECORDS = 32


def defined_symbols(tree: Path, src_arch: str, identity: str = "") -> frozenset[str]:
    """Every Kconfig symbol the source tree defines for this arch (its own arch/ directory and
    everything outside arch/), read from the Kconfig files: what a build may ask for. Read
    once per tree state (`identity`, the content identity cache keys use) and arch, and kept
    in the cache: walking a 6.x tree is 0.3-0.7 s, which every `ltoboot run` paid per arch
    before its cache hit."""
    memo = (identity or str(tree), src_arch)
    if memo not in _DEFINED:
        record = _symbols_record(identity, src_arch) if identity else None
        known = _read_symbols(record, identity, src_arch) if record else None
        if known is None:
            known = frozenset(_walk_symbols(tree, src_arch))
            if record is not None:
                record.parent.mkdir(parents=True, exist_ok=True)
                cache.write_atomic(record, "\n".join(
                    [f"{_SYMBOLS_FORMAT} {src_arch} {identity}", *sorted(known)]) + "\n")
                _keep_newest(record.parent, SYMBOL_RECORDS)
        _DEFINED[memo] = known
    return _DEFINED[memo]


def _walk_symbols(tree: Path, src_arch: str) -> set[str]:
    found: set[str] = set()
    for top, dirs, files in os.walk(tree):
        here = Path(top)
        dirs[:] = [d for d in dirs if not d.startswith(".")
                   and not (here == tree / "arch" and d != src_arch)]
        for f in files:
            if f.startswith("Kconfig"):
                found.update(_DEFINES.findall((here / f).read_text(errors="replace")))
    return found


def _symbols_record(identity: str, src_arch: str) -> Path:
    name = hashlib.sha256(f"{src_arch}\0{identity}".encode()).hexdigest()[:24]
    return cache.cache_root() / "kconfig-symbols" / f"{name}.txt"


def _keep_newest(directory: Path, keep: int) -> None:
    """Remove all but the `keep` records used last (a read touches its record)."""
    def used(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return 0.0
    for old in sorted(directory.glob("*.txt"), key=used, reverse=True)[keep:]:
        old.unlink(missing_ok=True)


def _read_symbols(record: Path, identity: str, src_arch: str) -> frozenset[str] | None:
    """The record's symbols, None unless it is whole and for this very tree and arch."""
    try:
        head, *symbols = record.read_text().splitlines()
        os.utime(record)  # used: kept over the records of trees gone by
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if head != f"{_SYMBOLS_FORMAT} {src_arch} {identity}" or not symbols \
            or not all(re.fullmatch(r"[A-Za-z0-9_]+", s) for s in symbols):
        return None
    return frozenset(symbols)


def undefined(wanted: Mapping[str, str], defined: frozenset[str]) -> list[str]:
    """Symbols `wanted` sets (to anything but n) that the tree does not define: Kconfig would
    drop them silently."""
    return [s for s, v in wanted.items() if v != "n" and s not in defined]


# How a compressed config starts, what Python opens it with, and the command that tests a
# copy: Debian's linux-config-* ship theirs xz-compressed, /proc/config.gz is gzip.
_COMPRESSED: tuple[tuple[str, bytes, str, Callable[[bytes], bytes], str], ...] = (
    ("xz", b"\xfd7zXZ\x00", ".xz", lzma.decompress, "xz -t"),
    ("gzip", b"\x1f\x8b", ".gz", gzip.decompress, "gzip -t"),
    ("bzip2", b"BZh", ".bz2", bz2.decompress, "bzip2 -t"),
)
# Compressed so that Python cannot read it: the tester decompresses it (name, magics, the
# command that does whatever the file is named; zstd's skippable frames are pzstd's start)
_SKIPPABLE = tuple(bytes([b, 0x2a, 0x4d, 0x18]) for b in range(0x50, 0x60))
_FOREIGN = (("zstd", (b"\x28\xb5\x2f\xfd", *_SKIPPABLE), "zstd -dc FILE > config"),
            ("LZ4", (b"\x04\x22\x4d\x18", b"\x02\x21\x4c\x18"), "lz4 -dc FILE > config"))


def read_config(path: Path, what: str = "--config") -> bytes:
    """What a config file says: its bytes, decompressed when it is xz, gzip or bzip2. A damaged one,
    or one named .xz/.gz that is not, is a UsageError naming the fix."""
    data = path.read_bytes()
    for name, magic, _, unpack, test in _COMPRESSED:
        if data.startswith(magic):  # what the file is, whatever its name says
            try:
                return unpack(data)
            except (lzma.LZMAError, EOFError, OSError, ValueError, zlib.error) as e:
                raise UsageError(f"{what} {path}: damaged {name} data ({e}): copy it again "
                                 f"(`{test} FILE` checks a copy)") from None
    for name, magics, command in _FOREIGN:
        if data.startswith(magics):
            raise UsageError(f"{what} {path} is {name}-compressed: give the .config itself "
                             f"(`{command}` decompresses it)")
    for name, _, suffix, _, _ in _COMPRESSED:
        if path.suffix == suffix:
            raise UsageError(f"{what} {path} is named {suffix} but is not {name} data: give "
                             "the .config itself or the file as it was compressed")
    return data


def string_value(raw: str) -> str | None:
    """A string option's value as a .config writes it ("...", with \\ and \" escaped),
    unquoted; None when `raw` is not a string."""
    if len(raw) < 2 or raw[0] != '"' or raw[-1] != '"':
        return None
    return re.sub(r"\\(.)", r"\1", raw[1:-1])


@dataclass(frozen=True)
class FileOption:
    """A string option naming a file the build reads: when the file is not there, make stops
    ("No rule to make target ..."). Cleared, it takes Kconfig's default, as the kernel's own
    scripts/kconfig/streamline_config.pl resets MODULE_SIG_KEY and SYSTEM_TRUSTED_KEYS."""

    symbol: str
    # a relative name is found in the source tree (a prerequisite make finds through VPATH
    # and the recipe reads where make found it), or only in the build directory (a recipe
    # reads the name as it is, from there), which starts empty
    in_source: bool
    made_by_kbuild: str = ""  # the value whose file kbuild generates itself: kept


# certs/Makefile and scripts/Makefile.modinst of Linux 6.1 say where each is read
FILE_OPTIONS = (
    FileOption("MODULE_SIG_KEY", in_source=False,  # sign-file reads it at modules_install
               made_by_kbuild="certs/signing_key.pem"),  # `openssl req` makes it
    FileOption("SYSTEM_TRUSTED_KEYS", in_source=True),  # extract-cert of $(real-prereqs)
    FileOption("SYSTEM_REVOCATION_KEYS", in_source=True),
    FileOption("SYSTEM_BLACKLIST_HASH_LIST", in_source=False),  # awk and cat of the name
    # scripts/gen_autoksyms.sh: a relative name is of the source tree
    FileOption("UNUSED_KSYMS_WHITELIST", in_source=True),
)


def unbuildable(values: Mapping[str, str], tree: Path) -> dict[str, str]:
    """The FILE_OPTIONS `values` sets to a file a build of `tree` has not got (an absolute
    name that is not there; a relative one the source does not ship, or that only the build
    directory could hold), symbol -> value as the config says it. A PKCS#11 URI is not a
    file: it stays."""
    found: dict[str, str] = {}
    for option in FILE_OPTIONS:
        raw = values.get(option.symbol)
        name = string_value(raw) if raw is not None else None
        if not name or name == option.made_by_kbuild or name.startswith("pkcs11:"):
            continue
        path = Path(name)
        there = path.is_file() if path.is_absolute() else \
            option.in_source and (tree / path).is_file()
        if not there:
            found[option.symbol] = str(raw)
    return found


# Options that build files of this machine into the kernel, by names no key can follow (a
# list of firmware under EXTRA_FIRMWARE_DIR; directories and cpio lists naming more files):
# cleared from a base config, so a cached kernel never holds what the machine held then.
# ltoboot gives QEMU its own initramfs; a guest needs no built-in firmware.
MACHINE_FILE_OPTIONS = ("EXTRA_FIRMWARE", "INITRAMFS_SOURCE")
# what goes with them (the options that exist only when they are set): symbol prefixes
CLEARED_WITH = {"EXTRA_FIRMWARE": ("EXTRA_FIRMWARE_DIR",),
                "INITRAMFS_SOURCE": ("INITRAMFS_ROOT_UID", "INITRAMFS_ROOT_GID",
                                     "INITRAMFS_COMPRESSION_")}


def machine_files(values: Mapping[str, str]) -> dict[str, str]:
    """The MACHINE_FILE_OPTIONS `values` sets to a non-empty list: symbol -> value."""
    return {s: values[s] for s in MACHINE_FILE_OPTIONS
            if s in values and (string_value(values[s]) or "").strip()}


def outside_files(values: Mapping[str, str]) -> dict[str, Path]:
    """The FILE_OPTIONS `values` sets to an absolute name that is there: files from outside
    the source tree that the build reads, whose content is then part of what is built."""
    found: dict[str, Path] = {}
    for option in FILE_OPTIONS:
        raw = values.get(option.symbol)
        name = string_value(raw) if raw is not None else None
        if name and Path(name).is_absolute() and Path(name).is_file():
            found[option.symbol] = Path(name)
    return found


def without(text: str, symbols: Iterable[str]) -> str:
    """`text` without the lines that set `symbols` (olddefconfig then gives their default);
    `text` itself when there are none."""
    gone = set(symbols)
    if not gone:
        return text
    kept = []
    for line in text.splitlines(keepends=True):
        m = _SET.match(line.strip()) or _UNSET.match(line.strip())
        if not (m and m.group(1) in gone):
            kept.append(line)
    return "".join(kept)


# Symbols that say what the toolchain is or can do (which compiler, its version, the flags it
# takes), not what the kernel does: a gcc-made config's differ under clang by nature. GCC
# plugins are features a config asked for: they count.
_TOOLCHAIN = re.compile(r"^(?:CC|LD|AS|CLANG|RUSTC|PAHOLE_HAS|TOOLS_SUPPORT|HAVE)_"
                        r"|^GCC\d*_(?!PLUGIN)|_VERSION(?:_TEXT)?$")


def lost(base: Mapping[str, str], after: Mapping[str, str],
         ours: Iterable[str] = ()) -> list[str]:
    """What the base set (y, m or a non-empty string) that the build's config does not say
    after Kconfig re-evaluated it (for another compiler, other host tools), leaving out
    toolchain symbols and `ours` (what ltoboot asked for, reported as added or not): the
    symbols, sorted."""
    mine = set(ours)
    return sorted(s for s, v in base.items()
                  if s not in mine and not _TOOLCHAIN.search(s)
                  and (v in ("y", "m") or (v.startswith('"') and v != '""'))
                  and after.get(s, "n") != v)
