"""Kernel sources: the Debian tarball (unpacked once into the cache) or a tree the user names."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.base import cache, proc
from harness.base.errors import InfraError, LtobootError, UsageError
from harness.base.progress import say
from harness.kernel import patched
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
CACHE_OWN = (".ltoboot-", "..ltoboot-", ".tmp-.ltoboot-", f"{cache.TRASH}.ltoboot-")
COPY_MARKER = "copy.json"  # beside the cache's copy of a user's tree (harness/kernel/copies.py)


def copy_marker(tree: Path) -> dict[str, Any] | None:
    """The record of a copy of a user's tree that the cache made, None for any other tree."""
    f = tree.parent / COPY_MARKER
    try:
        if f.is_file() and tree.parent.parent == cache.cache_root() / "trees":
            return dict(json.loads(f.read_text()))
    except (OSError, ValueError):
        return None
    return None


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


# git only reads the tester's repository: no index refresh, no lock, no gc, no maintenance
# (ltoboot's writes go to a temporary index and an object directory in the cache)
GIT_READ_ONLY = {"GIT_OPTIONAL_LOCKS": "0"}
# and none of the tester's hooks, monitors or conversions run: the blobs are the bytes on disk
_GIT_CONFIG = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.splitIndex=false",
               "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false",
               "-c", "core.hooksPath=/dev/null", "-c", "core.autocrlf=false",
               "-c", "core.safecrlf=false")


def git_read_only(tree: Path, *args: str) -> str:
    """What git says of the tester's repository, as only a reader may ask it."""
    return _git(tree, *args)


def _git(tree: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
         ) -> str:
    return proc.run(["git", "-C", str(tree), *_GIT_CONFIG, *args],
                    what=f"reading the git state of {tree}", error=UsageError,
                    env={**os.environ, **GIT_READ_ONLY, **(env or {})}, stdin=stdin).strip()


@dataclass(frozen=True)
class Content:
    """What a tree holds, as its identity covers it: path -> (git mode, content hash), where
    the mode is git's (100644, 100755, 120000 for a symlink, whose hash is its target's)."""

    identity: str
    description: str
    files: dict[str, tuple[str, str]]
    described: str = ""  # a git tree: `git describe --always --tags` of its HEAD


def objects_dir(tree: Path) -> Path:
    """Where the objects git writes while identifying a user's tree go (never its .git)."""
    return cache.cache_root() / "git-objects" / hashlib.sha256(str(tree).encode()).hexdigest()[:20]


def _temp_index(tree: Path, index: Path, mine: Path, head: str) -> dict[str, str]:
    """`mine` made a copy of the tester's index (with its time: git tells racy entries by
    it); the environment that has git use it and write objects to the cache. A split index
    would make git re-time the tester's shared index as it reads it: then `mine` is HEAD's
    tree, and git hashes every file once more (seconds on a kernel tree)."""
    env = {"GIT_INDEX_FILE": str(mine), "GIT_OBJECT_DIRECTORY": str(objects_dir(tree))}
    if index.is_file() and not any(index.parent.glob("sharedindex.*")):
        shutil.copy2(index, mine)
    elif head:
        _git(tree, "read-tree", head, env={**env, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(
            Path(_git(tree, "rev-parse", "--path-format=absolute", "--git-path", "objects")))})
    return env


def tracked_changes(tree: Path) -> bool:
    """Whether the tracked files of the git tree `tree` differ from HEAD (staged or not),
    asked without writing anything of the tester's (no index refresh)."""
    head = _git(tree, "rev-parse", "--verify", "HEAD")
    index = Path(_git(tree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    objects_dir(tree).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(), prefix="tracked-") as tmp:
        env = _temp_index(tree, index, Path(tmp) / "index", head)
        _git(tree, "add", "--update", "--", ".", env=env)
        return _git(tree, "write-tree", "--missing-ok", env=env) != \
            _git(tree, "rev-parse", f"{head}^{{tree}}")


def _git_content(tree: Path) -> Content:
    """Every file kbuild can read in a git work tree: HEAD, the index, changes to tracked
    files and the untracked files git does not ignore, named by one tree hash. git adds them
    to a copy of the tester's index whose new objects go to a directory in the cache: the
    tester's index, objects and locks are never written (their objects are not even visible
    to the writing commands, so git cannot freshen their times)."""
    head = proc.run(["git", "-C", str(tree), "rev-parse", "--verify", "--quiet", "HEAD"],
                    what=f"reading the git state of {tree}", ok=range(256),
                    env={**os.environ, **GIT_READ_ONLY}).strip()
    index = Path(_git(tree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    objects = objects_dir(tree)
    objects.mkdir(parents=True, exist_ok=True)
    cache.hold(objects)  # no prune removes it under git
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(), prefix="identity-") as tmp:
        mine = Path(tmp) / "index"
        env = _temp_index(tree, index, mine, head)
        hidden = [line[2:] for line in _git(tree, "ls-files", "-v", "-z", env=env).split("\0")
                  if line[:1].islower() or line[:1] == "S"]
        if hidden:  # assume-unchanged and skip-worktree entries: what is on disk counts
            _git(tree, "update-index", "--no-assume-unchanged", "--no-skip-worktree", "-z",
                 "--stdin", env=env, stdin="\0".join(hidden) + "\0")
        _git(tree, "add", "--all", "--", ".", env=env)
        tree_hash = _git(tree, "write-tree", "--missing-ok", env=env)
        listing = _git(tree, "ls-files", "--stage", "-z", env=env)
        converted = [line for line in _git(tree, "ls-files", "--eol", "-z", env=env)
                     .split("\0") if re.search(r"\battr/(?:text|-text|auto)|eol=", line)]
    if converted:  # .gitattributes that change bytes on their way in: git's blob is not
        # what kbuild reads; the bytes themselves are the identity then
        return _walk_content(tree)
    files: dict[str, tuple[str, str]] = {}
    for line in listing.split("\0"):
        if line:
            meta, _, path = line.partition("\t")
            mode, blob, _ = meta.split(" ", 2)
            files[path] = (mode, blob)
    _copyable(tree, files)
    committed = _git(tree, "rev-parse", f"{head}^{{tree}}") if head else ""
    dirty = tree_hash != committed
    try:
        described = _git(tree, "describe", "--always", "--tags", head) if head else ""
    except UsageError:
        described = ""
    desc = described or head[:12] or "no commit"
    return Content(f"git:{head}:{tree_hash if dirty else ''}",
                   f"{tree} at {desc}{'-dirty' if dirty else ''} ({head[:12] or 'unborn'})",
                   files, described)


def index_tree(tree: Path) -> str:
    """The tree the tester's index holds (what is staged), written to the cache's object
    directory from a copy of their index; "" when it cannot be had without writing theirs (no
    index, or a split one)."""
    index = Path(_git(tree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    if not index.is_file() or any(index.parent.glob("sharedindex.*")):
        return ""
    with tempfile.TemporaryDirectory(dir=cache.scratch_root(), prefix="index-") as tmp:
        mine = Path(tmp) / "index"
        shutil.copy2(index, mine)
        try:
            return _git(tree, "write-tree", "--missing-ok", env={
                "GIT_INDEX_FILE": str(mine), "GIT_OBJECT_DIRECTORY": str(objects_dir(tree))})
        except UsageError:  # a conflicted index (a merge in progress)
            return ""


def _copyable(tree: Path, files: dict[str, tuple[str, str]]) -> None:
    """Refuse, naming it, what a copy of the tree could not be the same as: a repository
    inside it (git names it by a commit, not its files), a symlink that leads out of it, a
    name that is not UTF-8."""
    for rel, (mode, _) in files.items():
        if "\ufffd" in rel:
            raise UsageError(f"--kernel-src {tree}: a file name that is not UTF-8 ({rel!r}): "
                             "rename it")
        if mode == "160000":
            raise UsageError(f"--kernel-src {tree}: {rel} is a git repository inside the tree "
                             "(a submodule): ltoboot cannot name its files; remove it or give "
                             "a tree without it")
        if mode == "120000":
            target = os.readlink(tree / rel)
            inside = os.path.normpath(os.path.join(os.path.dirname(rel), target))
            if os.path.isabs(target) or inside == ".." or inside.startswith("../"):
                raise UsageError(f"--kernel-src {tree}: {rel} is a symlink out of the tree "
                                 f"(to {target}): ltoboot builds a copy of the tree and cannot "
                                 "follow it; put the file itself in the tree")


def _walk_content(tree: Path) -> Content:
    """Every file of a tree that is not a repository, by its bytes: a file whose size, times
    (ctime included, which no tool can set back) or inode changed is hashed again; the
    others come from the last walk's record in the cache."""
    record = cache.cache_root() / "hashes" / (
        "tree-" + hashlib.sha256(str(tree).encode()).hexdigest()[:20] + ".json")
    try:
        known: dict[str, list[Any]] = json.loads(record.read_text())
    except (OSError, ValueError):
        known = {}
    seen: dict[str, list[Any]] = {}
    files: dict[str, tuple[str, str]] = {}
    fresh = time.time_ns() - 2_000_000_000  # timestamps are coarser than writes
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted([*filenames, *links]):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, tree)
            try:
                rel.encode()
            except UnicodeEncodeError:
                shown = rel.encode(errors="replace").decode()
                raise UsageError(f"--kernel-src {tree}: a file name that is not UTF-8 "
                                 f"({shown!r}): rename it") from None
            st = os.lstat(path)
            stamp = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode]
            if stat.S_ISLNK(st.st_mode):
                files[rel] = ("120000", hashlib.sha256(os.readlink(path).encode()).hexdigest())
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            mode = "100755" if st.st_mode & 0o111 else "100644"
            old = known.get(rel)
            if old is not None and old[:5] == stamp:
                digest = str(old[5])
            else:
                try:
                    digest = cache.file_sha256(Path(path))
                except OSError as e:
                    raise UsageError(f"--kernel-src {tree}: cannot read {rel} ({e.strerror}): "
                                     "make it readable") from None
            files[rel] = (mode, digest)
            if max(st.st_mtime_ns, st.st_ctime_ns) < fresh:
                seen[rel] = [*stamp, digest]
    _copyable(tree, files)
    with contextlib.suppress(OSError):
        record.parent.mkdir(exist_ok=True)
        cache.write_atomic(record, json.dumps(seen))
    h = hashlib.sha256()
    for rel in sorted(files):
        mode, digest = files[rel]
        h.update(f"{rel}\0{mode}\0{digest}\n".encode())
    return Content(f"tree:{h.hexdigest()}", f"{tree} (tree, {h.hexdigest()[:12]})", files)


def content(tree: Path) -> Content:
    """The identity of a source tree the user gives: every file kbuild can read."""
    return _git_content(tree) if (tree / ".git").exists() else _walk_content(tree)


def tree_identity(tree: Path) -> tuple[str, str]:
    """(identity, description) of a source tree: its content, whether or not git tracks it."""
    c = content(tree)
    return c.identity, c.description


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
    c = content(path)
    return KernelSource(tree=path, identity=c.identity, description=c.description,
                        version=makefile_version(path), git=(path / ".git").exists(),
                        owned=owned, files=None if owned else c.files, described=c.described)


def _git_answer(tree: Path, *args: str) -> str:
    """What git says, only reading the repository; "" when it says nothing (no git, no
    such remote): the field is then left out."""
    try:
        return proc.run(["git", "-C", str(tree), *_GIT_CONFIG, *args],
                        what=f"reading the git state of {tree}", ok=range(256),
                        env={**os.environ, **GIT_READ_ONLY}).strip()
    except LtobootError:
        return ""


def _git_says_yes(tree: Path, *args: str) -> bool:
    """Whether a git command that answers with its exit status says yes, only reading."""
    try:
        proc.run(["git", "-C", str(tree), *_GIT_CONFIG, *args],
                 what=f"reading the git state of {tree}", error=UsageError,
                 env={**os.environ, **GIT_READ_ONLY})
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
    say. That tree's new objects are in the cache (objects_dir, written by content()), the
    rest in the tester's repository, which git only reads here."""
    theirs = _git_answer(tree, "rev-parse", "--path-format=absolute", "--git-path", "objects")
    mine = objects_dir(tree)
    if not theirs or not mine.is_dir():
        return ""
    env = {**os.environ, **GIT_READ_ONLY, "GIT_OBJECT_DIRECTORY": str(mine),
           "GIT_ALTERNATE_OBJECT_DIRECTORIES": theirs}
    digest = hashlib.sha256()
    # fixed settings: the same changes are the same bytes, whatever the tester's git config
    with proc.running(["git", "-C", str(tree), *_GIT_CONFIG, "-c", "core.quotePath=true",
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
