"""A tree's identity is its content: every file kbuild can read (for a git tree, HEAD and one
tree hash of the tracked, changed and untracked-but-not-ignored files; for any other tree,
every file's bytes), found without writing anything of the tester's: git works on a copy of
their index, its objects go to the cache, and none of their hooks, monitors or conversions
run."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.base import cache, proc
from harness.base.errors import UsageError

# git only reads the tester's repository: no index refresh, no lock, no gc, no maintenance
# (ltoboot's writes go to a temporary index and an object directory in the cache)
GIT_READ_ONLY = {"GIT_OPTIONAL_LOCKS": "0"}
# and none of the tester's hooks, monitors or conversions run: the blobs are the bytes on disk
GIT_CONFIG = ("-c", "gc.auto=0", "-c", "maintenance.auto=false", "-c", "core.splitIndex=false",
               "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false",
               "-c", "core.hooksPath=/dev/null", "-c", "core.autocrlf=false",
               "-c", "core.safecrlf=false")


def git_read_only(tree: Path, *args: str) -> str:
    """What git says of the tester's repository, as only a reader may ask it."""
    return _git(tree, *args)


def _git(tree: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
         ) -> str:
    return proc.run(["git", "-C", str(tree), *GIT_CONFIG, *args],
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
