"""After a build that started from another one: did make really rebuild what changed?

make trusts times. A build that starts from a copy of another build is the build from nothing
only when every target that depends on a changed file was made again. kbuild writes what each
target depends on into its `.cmd` file (`source_<t>` and `deps_<t>`, the Kconfig files in
include/config/auto.conf.cmd), so after the build it is cheap to check, for every target the
kernel still uses:
- no file it depends on is newer than it (make's own rule, which a clock that went backwards,
  or a donor's times from the future, would leave broken), and
- it is newer than the moment the changed files were stamped when it depends on one of them
  (a change make could not see: a time set back, a retargeted symlink, a deleted file).
A target the kernel no longer uses (an object of an option now off) may be stale: it is
not looked at. Whatever fails sends the build back to nothing (harness/kernel/build.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_ASSIGN = re.compile(r"^(source|deps)_(\S+) := ?(.*)$")


@dataclass(frozen=True)
class Stale:
    target: str  # relative to the build directory
    because: str  # the file it depends on, relative to the source tree or the build directory

    def __str__(self) -> str:
        return f"{self.target} is older than {self.because}"


def _tokens(lines: Iterator[str], first: str) -> list[str]:
    """The words of a make variable that continues over lines ending in a backslash."""
    words: list[str] = []
    line = first
    while True:
        more = line.rstrip().endswith("\\")
        words += line.rstrip().rstrip("\\").split()
        if not more:
            return words
        line = next(lines, "")


def dependencies(cmd_text: str) -> dict[str, list[str]]:
    """target -> the files it depends on, from a kbuild .cmd file's `source_` and `deps_`
    (`$(wildcard X)` entries are X: a config option's stamp under include/config)."""
    found: dict[str, list[str]] = {}
    lines = iter(cmd_text.splitlines())
    for line in lines:
        m = _ASSIGN.match(line)
        if m is None:
            continue
        words = _tokens(lines, m.group(3))
        deps = found.setdefault(m.group(2), [])
        for w in words:
            if w.startswith("$(wildcard"):
                continue
            deps.append(w.removesuffix(")"))
        # `$(wildcard include/config/X)` arrives as two words: the second is the path
    return found


def kconfig_dependencies(cmd_text: str) -> list[str]:
    """The Kconfig files include/config/auto.conf was made from (auto.conf.cmd)."""
    lines = iter(cmd_text.splitlines())
    for line in lines:
        if line.startswith("deps_config :="):
            return _tokens(lines, line.removeprefix("deps_config :="))
    return []


def _members(archive: Path) -> set[str] | None:
    """The objects a thin archive names (kbuild's built-in.a, lib.a, vmlinux.a); None when
    it is not one."""
    try:
        data = archive.read_bytes()
    except OSError:
        return None
    if not data.startswith(b"!<thin>\n"):
        return None
    found: set[str] = set()
    names = b""
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode(errors="replace").strip()
        try:
            size = int(header[48:58].decode().strip() or 0)
        except ValueError:
            return None
        body_at = pos + 60
        if name in ("//", "/"):  # the long-name table and the symbol table have bodies
            if name == "//":
                names = data[body_at:body_at + size]
            pos = body_at + size + (size & 1)
            continue
        if name.startswith("/") and name[1:].split("/")[0].isdigit():
            at = int(name[1:].split("/")[0])
            end = names.find(b"/\n", at)
            member = names[at:end].decode(errors="replace")
        else:
            member = name.rstrip("/")
        # a member's path is relative to the archive's directory
        rel_dir = os.path.dirname(str(archive))
        found.add(os.path.normpath(os.path.join(rel_dir, member)))
        pos = body_at  # a thin archive's members are not inside it
    return found


def _live(out: Path) -> set[str] | None:
    """The objects the kernel is made of: every thin archive's members (vmlinux.a, lib.a,
    each built-in.a) and every module's objects; None when the build has no vmlinux.a
    (kernels before 6.0): then every object counts. The boot image's own objects (the
    decompressor under arch/*/boot/) are in no archive: they always count (see stale())."""
    if _members(out / "vmlinux.a") is None:
        return None
    live: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames[:] = [d for d in dirnames if not d.startswith("ltoboot-")]
        for name in filenames:
            if name.endswith(".a"):
                path = Path(dirpath) / name
                members = _members(path)
                if members is not None:
                    live |= {os.path.relpath(m, out) for m in members}
    try:
        modules = (out / "modules.order").read_text().split()
    except OSError:
        modules = []
    for ko in modules:
        base = ko.removesuffix(".ko").removesuffix(".o")
        live.update({f"{base}.ko", f"{base}.mod.o", f"{base}.o"})
        with contextlib.suppress(OSError):  # the objects a module is linked from
            live.update(os.path.normpath(w) for w in (out / f"{base}.mod").read_text().split())
    return live


def _targets(out: Path) -> Iterator[tuple[str, list[str]]]:
    """(target, what it depends on as kbuild wrote it) for every .cmd file of the build."""
    for dirpath, dirnames, filenames in os.walk(out):
        dirnames[:] = [d for d in dirnames if not d.startswith("ltoboot-")]
        for name in filenames:
            if not (name.startswith(".") and name.endswith(".cmd")):
                continue  # include/config/auto.conf.cmd (no dot) is read below
            path = os.path.join(dirpath, name)
            try:
                text = Path(path).read_text(errors="replace")
            except OSError:
                continue
            yield from dependencies(text).items()
    try:
        conf = (out / "include" / "config" / "auto.conf.cmd").read_text()
    except OSError:
        return
    yield "include/config/auto.conf", [f"../{p}" for p in kconfig_dependencies(conf)]


def stale(out: Path, changed: Iterable[str], since_ns: int) -> list[Stale]:
    """What make left older than it must be in the build directory `out`, whose source tree
    is its parent (`..`, as kbuild records it for a tree the cache owns): `changed` are the
    source files (relative to the tree) that differ from the build it started from; what
    depends on one of them must have been made at `since_ns` or later (the build's start,
    and not before the changed files' stamp). Empty when the build is what a build from
    nothing gives."""
    changed = set(changed)
    live = _live(out)
    times: dict[str, int | None] = {}

    def mtime(path: str) -> int | None:
        if path not in times:
            try:
                times[path] = os.stat(out / path).st_mtime_ns
            except OSError:
                times[path] = None
        return times[path]

    found: list[Stale] = []
    for target, deps in _targets(out):
        norm = os.path.normpath(target)
        if live is not None and norm.endswith((".o", ".ko")) and norm not in live \
                and not re.match(r"arch/[^/]+/boot/", norm):
            continue  # not part of this kernel (an option now off): make never looked at it
        made = mtime(norm)
        if made is None:
            continue  # not made by this build
        for dep in deps:
            if os.path.isabs(dep):
                continue  # the compiler's own headers
            rel = os.path.normpath(dep)
            in_tree = rel.startswith("../")
            if in_tree and rel.removeprefix("../") in changed and made < since_ns:
                found.append(Stale(norm, rel.removeprefix("../")))
                break
            when = mtime(rel)
            if when is not None and when > made:
                found.append(Stale(norm, rel.removeprefix("../") if in_tree else rel))
                break
    return found
