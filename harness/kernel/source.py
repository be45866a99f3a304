"""Kernel sources: the Debian tarball (unpacked once into the cache) or a tree the user names."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness import cache, proc
from harness.errors import InfraError, UsageError
from harness.kernel import patched
from harness.kernel.toolchain import DEFAULT_SOURCE_PACKAGE
from harness.progress import say

DEFAULT_PACKAGE = DEFAULT_SOURCE_PACKAGE
DEFAULT_TARBALL = Path(f"/usr/src/{DEFAULT_PACKAGE}.tar.xz")
BISECT_TREES = "bisect-trees"  # `ltoboot bisect`'s clones of testers' repositories


@dataclass(frozen=True)
class KernelSource:
    tree: Path  # the source tree kbuild runs in (never written to: builds use O=)
    identity: str  # content identity for cache keys
    description: str  # what a human calls it: tarball name and hash, or git describe
    version: str  # VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile
    git: bool
    owned: bool = False  # the cache made this tree: build directories may live inside it


def makefile_version(tree: Path) -> str:
    fields = dict(
        re.findall(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION) = ?(.*)$",
                   (tree / "Makefile").read_text(errors="replace"), re.M)
    )
    return f"{fields.get('VERSION', '?')}.{fields.get('PATCHLEVEL', '?')}." \
        f"{fields.get('SUBLEVEL', '?')}{fields.get('EXTRAVERSION', '')}"


def _unpack(tarball: Path, dest: Path) -> None:
    dest.mkdir()
    say(f"unpacking {tarball} into {dest.parent} (once)")
    proc.run(["tar", "-xf", str(tarball), "-C", str(dest), "--no-same-owner"],
             what=f"unpacking {tarball.name}", error=UsageError)


def from_tarball(tarball: Path) -> KernelSource:
    if not tarball.is_file():
        if tarball == DEFAULT_TARBALL:
            raise InfraError(f"{tarball} is missing: run ./setup.sh or apt-get install "
                             f"{DEFAULT_PACKAGE}")
        raise UsageError(f"kernel source {tarball} does not exist: give a tree or a tarball")
    digest = cache.file_sha256_remembered(tarball)
    entry = cache.publish(cache.cache_root() / "src" / digest[:20],
                          lambda tmp: _unpack(tarball, tmp))
    tops = [p for p in entry.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "Makefile").is_file():
        raise UsageError(f"{tarball} does not unpack to a single kernel tree")
    tree = tops[0]
    return KernelSource(tree=tree, identity=f"tarball:{digest}",
                        description=f"{tarball.name} (sha256 {digest[:12]})",
                        version=makefile_version(tree), git=False, owned=True)


def _git(tree: Path, *args: str) -> str:
    """git's output; never an opportunistic write (an index refresh) in a tester's tree."""
    return proc.run(["git", "--no-optional-locks", "-C", str(tree), *args],
                    what=f"reading the git state of {tree}", error=UsageError).strip()


def tree_identity(tree: Path) -> tuple[str, str]:
    """(identity, description) of a source tree: git state when it is a repository. Only
    commands that write nothing in it: `git diff` and `describe --dirty` write the index
    whenever its file times are stale (--no-optional-locks or not), diff-index does not."""
    if (tree / ".git").exists():
        head = _git(tree, "rev-parse", "HEAD")
        status = _git(tree, "status", "--porcelain", "--untracked-files=no")
        diff = _git(tree, "diff-index", "-p", "HEAD", "--") if status else ""
        dirty = hashlib.sha256(diff.encode()).hexdigest()[:12] if status else ""
        try:
            desc = _git(tree, "describe", "--always", "--tags") + ("-dirty" if status else "")
        except UsageError:
            desc = head[:12]
        return f"git:{head}:{dirty}", f"{tree} at {desc} ({head[:12]})"
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".git"))
        for name in sorted(filenames):
            st = os.lstat(os.path.join(dirpath, name))
            rel = os.path.relpath(os.path.join(dirpath, name), tree)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return f"tree:{h.hexdigest()}", f"{tree} (tree, {h.hexdigest()[:12]})"


def bisect_clone(tree: Path) -> bool:
    """Whether `tree` is a clone `ltoboot bisect` made in the cache (harness/bisect.py): a
    tree the cache owns, whose file times a build may align to its donor's."""
    return tree.resolve().parent == cache.cache_root().resolve() / BISECT_TREES \
        and (tree / ".git").is_dir()


def require_tree(path: Path, what: str) -> None:
    """Refuse a directory that is not a kernel source tree, naming what the user gave."""
    if not (path / "Makefile").is_file() or not (path / "Kconfig").is_file():
        raise UsageError(f"{what}: not a kernel source tree (no Makefile/Kconfig): give the "
                         "top directory of a Linux source tree")


def resolve(spec: str | os.PathLike[str] | None) -> KernelSource:
    """A kernel source from a tree, a tarball, or (None) the embedded Debian default."""
    if spec is None:
        return from_tarball(DEFAULT_TARBALL)
    path = Path(spec).expanduser().resolve()
    if path.is_file():
        return from_tarball(path)
    if not path.is_dir():
        raise UsageError(f"--kernel-src {spec}: no such file or directory")
    require_tree(path, f"--kernel-src {spec}")
    if not cache.kbuild_can_use(path):
        raise UsageError(f"--kernel-src {spec}: kbuild cannot build a tree whose path has a "
                         "space or a colon; move or link it to a path without them")
    applied = patched.marker(path)
    if applied is not None:  # a series applied by `tested-by --series`: the cache's own tree
        return KernelSource(tree=path, identity=applied["identity"],
                            description=applied["description"], version=makefile_version(path),
                            git=False, owned=True)
    identity, desc = tree_identity(path)
    return KernelSource(tree=path, identity=identity, description=desc,
                        version=makefile_version(path), git=(path / ".git").exists(),
                        owned=bisect_clone(path))
