"""Kernel sources: the Debian tarball (unpacked once into the cache) or a tree the user names."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.base import cache, proc
from harness.base.errors import InfraError, LtobootError, UsageError
from harness.base.progress import say
from harness.kernel import identity, patched
from harness.kernel.host_packages import DEFAULT_SOURCE_PACKAGE
from harness.kernel.model import Checkout, patchset_hash

DEFAULT_PACKAGE = DEFAULT_SOURCE_PACKAGE
DEFAULT_TARBALL = Path(f"/usr/src/{DEFAULT_PACKAGE}.tar.xz")
BISECT_TREES = "bisect-trees"  # `ltoboot bisect`'s clones of testers' repositories


@dataclass(frozen=True)
class KernelSource:
    tree: Path  # the tree: the cache's own, or the user's (only read: builds use a copy)
    identity: str  # content identity for cache keys
    description: str  # what a human calls it: tarball name and hash, or git describe
    version: str  # VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile
    git: bool
    owned: bool = False  # the cache made this tree: build directories may live inside it
    # a user's tree: every file its identity covers, path -> (git mode, content hash)
    files: dict[str, tuple[str, str]] | None = field(default=None, compare=False, repr=False)
    described: str = ""  # a git tree: `git describe --always --tags` of its HEAD
    tarball: Path | None = None  # the tarball the tree was unpacked from


# at a tree's top: its build directories and the cache's own files beside them (a build's
# lock, hold and size records: "..ltoboot-<label>-<key>.lock"; a build being made, or pruned
# and not yet deleted), not the kernel's
CACHE_OWN = cache.CACHE_OWN
COPY_MARKER = "copy.json"  # beside the cache's copy of a user's tree (harness/kernel/copies.py)


def copy_marker(tree: Path) -> dict[str, Any] | None:
    """The record of a copy of a user's tree that the cache made, None for any other tree."""
    return cache.tree_record(tree, "trees", COPY_MARKER)


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
                        version=makefile_version(tree), git=False, owned=True, tarball=tarball)


# what kbuild finds in a source tree that was built in (it refuses O= then; so do we, first)
IN_TREE_OUTPUTS = (".config", "include/config", "include/generated")


def require_clean(path: Path, what: str) -> None:
    """Refuse a tree that holds an in-tree build, as kbuild refuses it for O=."""
    found = [p for p in IN_TREE_OUTPUTS if (path / p).exists()]
    found += [str(p.relative_to(path)) for p in sorted(path.glob("arch/*/include/generated"))]
    if found:
        raise UsageError(f"{what}: the tree holds an in-tree build ({', '.join(found[:3])}); "
                         f"run `make mrproper` in it (kbuild refuses O= builds of it too)")


def bisect_clone(tree: Path) -> bool:
    """Whether `tree` is a clone `ltoboot bisect` made in the cache (harness/runs/bisect.py): a
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
    applied = patched.marker(path)
    if applied is not None:  # a series applied by `tested-by --series`: the cache's own tree
        return KernelSource(tree=path, identity=applied["identity"],
                            description=applied["description"], version=makefile_version(path),
                            git=False, owned=True)
    copied = copy_marker(path)
    if copied is not None:  # the cache's copy of a user's tree (a kernel's source_tree)
        return KernelSource(tree=path, identity=copied["identity"],
                            description=copied["description"], version=makefile_version(path),
                            git=False, owned=True)
    owned = bisect_clone(path)  # `ltoboot bisect`'s clone: the cache builds inside it
    if not owned:
        require_clean(path, f"--kernel-src {spec}")
    c = identity.content(path)
    return KernelSource(tree=path, identity=c.identity, description=c.description,
                        version=makefile_version(path), git=(path / ".git").exists(),
                        owned=owned, files=None if owned else c.files, described=c.described)


def _git_answer(tree: Path, *args: str) -> str:
    """What git says, only reading the repository; "" when it says nothing (no git, no
    such remote): the field is then left out."""
    try:
        return proc.run(["git", "-C", str(tree), *identity.GIT_CONFIG, *args],
                        what=f"reading the git state of {tree}", ok=range(256),
                        env={**os.environ, **identity.GIT_READ_ONLY}).strip()
    except LtobootError:
        return ""


def _git_says_yes(tree: Path, *args: str) -> bool:
    """Whether a git command that answers with its exit status says yes, only reading."""
    try:
        proc.run(["git", "-C", str(tree), *identity.GIT_CONFIG, *args],
                 what=f"reading the git state of {tree}", error=UsageError,
                 env={**os.environ, **identity.GIT_READ_ONLY})
    except LtobootError:
        return False
    return True


def upstream(tree: Path, commit: str) -> tuple[str, str]:
    """(URL, branch) of where `commit` of the tester's repository comes from: the remote the
    current branch follows (`origin` when it follows none), and its branch when `commit` is
    on it as last fetched ("" when not, or not known). Only reads the repository."""
    remote, branch = "origin", ""
    ref = _git_answer(tree, "symbolic-ref", "-q", "HEAD")  # "" when detached
    if ref.startswith("refs/heads/"):
        name, _, rest = _git_answer(
            tree, "for-each-ref", "--format=%(upstream:remotename)%00%(upstream:remoteref)"
            "%00%(upstream)", ref).partition("\0")
        remote_ref, _, tracking = rest.partition("\0")
        if name and name != ".":  # "." follows a branch of its own repository
            remote = name
            if commit and remote_ref.startswith("refs/heads/") and tracking and _git_says_yes(
                    tree, "merge-base", "--is-ancestor", commit, tracking):
                branch = remote_ref.removeprefix("refs/heads/")
    return _git_answer(tree, "remote", "get-url", remote), branch


def _local_changes_sha256(tree: Path, head: str, dirty: str) -> str:
    """The sha256 of a dirty tree's local changes as one patch: `git diff-tree -p --binary`
    from HEAD to the tree its identity names (untracked files included), "" when git cannot
    say. That tree's new objects are in the cache (written by identity.content()), the
    rest in the tester's repository, which git only reads here."""
    theirs = _git_answer(tree, "rev-parse", "--path-format=absolute", "--git-path", "objects")
    mine = identity.objects_dir(tree)
    if not theirs or not mine.is_dir():
        return ""
    env = {**os.environ, **identity.GIT_READ_ONLY, "GIT_OBJECT_DIRECTORY": str(mine),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": theirs}
    digest = hashlib.sha256()
    # fixed settings: the same changes are the same bytes, whatever the tester's git config
    with proc.running(["git", "-C", str(tree), *identity.GIT_CONFIG, "-c", "core.quotePath=true",
                       "diff-tree", "-r", "-p", "--binary", "--no-renames", "--no-ext-diff",
                       "--no-textconv", head, dirty], stdout=subprocess.PIPE,
                      stderr=subprocess.DEVNULL, text=False, env=env) as p:
        while chunk := p.stdout.read(1 << 20):
            digest.update(chunk)
        p.wait()
    return digest.hexdigest() if p.returncode == 0 else ""


def checkout_of(src: KernelSource) -> Checkout:
    """Where `src` came from, for the reports (a kernel carries it from its build's plan):
    its identity, the commit and its name, local changes (and their patchset_hash, as one
    patch), the remote and its branch, a series' base."""
    found = Checkout(identity=src.identity, description=src.description, tree=str(src.tree),
                     tarball=str(src.tarball or ""), version=src.version)
    kind, _, rest = src.identity.partition(":")
    if kind == "git":
        head, _, dirty = rest.partition(":")
        described = src.described or (_git_answer(src.tree, "describe", "--always", "--tags",
                                                   head) if head else "")
        url, branch = upstream(src.tree, head)
        local = _local_changes_sha256(src.tree, head, dirty) if head and dirty else ""
        return replace(found, commit=head, described=described, local_changes=dirty,
                       remote_url=url, remote_branch=branch,
                       patchset_hash=patchset_hash([local]) if local else "")
    if kind == "series":
        record = patched.marker(src.tree) or {}
        base, repo = str(record.get("base", "")), str(record.get("repo", ""))
        url, branch = upstream(Path(repo), base) if repo else ("", "")
        return replace(found, commit=base, described=str(record.get("base_described", "")),
                       repository=repo, remote_url=url, remote_branch=branch)
    return found
