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


def _live(out: Path) -> set[str] | None:
    """The objects the kernel is made of: vmlinux.a's members (a thin archive names them)
    and every module's objects; None when the build has no vmlinux.a (kernels before 6.0):
    then every object counts."""
    archive = out / "vmlinux.a"
    try:
        data = archive.read_bytes()
    except OSError:
        return None
    live: set[str] = set()
    if data.startswith(b"!<thin>\n"):
        names = b""
        pos = 8
        while pos + 60 <= len(data):
            header = data[pos:pos + 60]
            name = header[:16].decode(errors="replace").strip()
            size = int(header[48:58].decode().strip() or 0)
            body_at = pos + 60
            if name == "//":  # the long-name table; thin members have no body
                names = data[body_at:body_at + size]
                pos = body_at + size + (size & 1)
                continue
            if name == "/":  # the symbol table
                pos = body_at + size + (size & 1)
                continue
            if name.startswith("/") and name[1:].split("/")[0].isdigit():
                at = int(name[1:].split("/")[0])
                end = names.find(b"/\n", at)
                live.add(os.path.normpath(names[at:end].decode(errors="replace")))
            else:
                live.add(os.path.normpath(name.rstrip("/")))
            pos = body_at  # a thin archive's members are not inside it
    else:
        return None
    order = out / "modules.order"
    try:
        modules = order.read_text().split()
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


def stale(out: Path, changed: Iterable[str], stamp_ns: int) -> list[Stale]:
    """What make left older than it must be in the build directory `out`, whose source tree
    is its parent (`..`, as kbuild records it for a tree the cache owns): `changed` are the
    source files (relative to the tree) that differ from the build it started from, stamped
    at `stamp_ns`. Empty when the build is what a build from nothing gives."""
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
        if live is not None and norm.endswith((".o", ".ko")) and norm not in live:
            continue  # not part of this kernel (an option now off): make never looked at it
        made = mtime(norm)
        if made is None:
            continue  # not made by this build
        for dep in deps:
            if os.path.isabs(dep):
                continue  # the compiler's own headers
            rel = os.path.normpath(dep)
            in_tree = rel.startswith("../")
            if in_tree and rel.removeprefix("../") in changed and made < stamp_ns:
                found.append(Stale(norm, rel.removeprefix("../")))
                break
            when = mtime(rel)
            if when is not None and when > made:
                found.append(Stale(norm, rel.removeprefix("../") if in_tree else rel))
                break
    return found
