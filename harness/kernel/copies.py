"""A tree the user gives (`--kernel-src`), copied into the cache: what its builds compile.

ltoboot never writes into the tester's tree, not even a time, so kbuild does not build there:
every build of a user's tree compiles a copy the cache owns, at
`<cache>/trees/<key of the tree's identity>/tree`, with its build directories inside
(`.ltoboot-<label>-<key>`: kbuild records the source tree as `..`, so any build of it can
start another one, and any build of another tree can start one of it).

- Its files are exactly those the identity covers (harness/kernel/source.py: for a git tree
  the tracked and the untracked files git does not ignore; otherwise every file), copied from
  the tester's tree, which is identified again afterwards: a tree that changed while it was
  copied is refused, not cached.
- Starting from the nearest build of another tree the cache owns (the default tarball's, a
  series', an earlier copy of this tree), it is that tree's files hard-linked, those that
  differ copied in as new files and stamped above every time of that build: what is the same
  keeps the donor's time through the shared inode, so make sees exactly what differs as new.
  Copying the files that differ costs milliseconds; linking the rest a few seconds.
- With no build to start from, it is a full copy (1.4 GiB of a 6.1 tree: 20-35 s here,
  against minutes of a build from nothing: docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.base import cache, proc
from harness.base.errors import InfraError, UsageError
from harness.base.progress import say
from harness.kernel import identity, source, stamps

RECIPE = 1  # bump when a copy of the same identity would come out differently


def location(identity: str) -> Path:
    """Where the copy of a tree with this identity is (whether it is there yet or not)."""
    return cache.cache_root() / "trees" / cache.content_key(
        {"recipe": RECIPE, "identity": identity}) / "tree"


@dataclass(frozen=True)
class Copy:
    tree: Path
    base: Path | None  # the cache's tree whose unchanged files it shares, if any
    changed: frozenset[str]  # the files that differ from the base (deleted ones too)
    stamp_ns: int  # the time they were given
    said: str  # what was done, for the build's line

    @classmethod
    def of(cls, tree: Path) -> Copy | None:
        record = source.copy_marker(tree)
        if record is None:
            return None
        base = record.get("base")
        return cls(tree, Path(base) if base else None, frozenset(record.get("changed", ())),
                   int(record.get("stamp_ns", 0)), str(record.get("said", "")))


def _link_tree(base: Path, dest: Path) -> None:
    """`dest` made of hard links to `base`'s files (its build directories left out)."""
    dest.mkdir()
    for item in sorted(base.iterdir()):
        if item.name.startswith(source.CACHE_OWN) or item.name == ".git":
            continue  # its builds, and its own git directory (each copy has one)
        proc.run(["cp", "-al", str(item), str(dest / item.name)],
                 what=f"linking {base} into the cache's copy", error=InfraError)


def _put(tree: Path, rel: str, origin: Path, mode: str) -> int:
    """`rel` of `tree` replaced by the tester's file (a new inode); its size."""
    dest = tree / rel
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    else:
        dest.unlink(missing_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src = origin / rel
    try:
        if mode == "120000":
            os.symlink(os.readlink(src), dest)
            return 0
        # the tester's file: what goes wrong reading it is theirs to mend
        with open(src, "rb") as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out, 1 << 20)
    except OSError as e:
        if e.filename not in (str(src), src):
            raise
        if isinstance(e, (FileNotFoundError, NotADirectoryError)):
            raise UsageError(f"--kernel-src {origin} changed while ltoboot copied it ({rel} "
                             "is gone): run again when it is still") from None
        raise UsageError(f"--kernel-src {origin}: cannot read {rel} ({e.strerror}): make it "
                         "readable") from None
    os.chmod(dest, 0o755 if mode == "100755" else 0o644)
    return dest.stat().st_size


def _extra(tree: Path, files: dict[str, tuple[str, str]]) -> list[str]:
    """Files of `tree` the identity does not have (the base's, not the tester's)."""
    extra: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        if dirpath == str(tree):
            filenames = [f for f in filenames if f != ".git"]
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in (*filenames, *links):
            rel = os.path.relpath(os.path.join(dirpath, name), tree)
            if rel not in files:
                extra.append(rel)
    return extra


def _git_dir(entry: Path, src: source.KernelSource, base: Path | None) -> None:
    """A git directory for the copy (`<entry>/git`, the tree's `.git` a file naming it): the
    tester's commit and tags, their objects borrowed read-only, and an index of the copy's
    files. kbuild's setlocalversion then names the kernel as in the tester's tree (`+`, or
    `-<n>-g<hash>` with CONFIG_LOCALVERSION_AUTO, `-dirty`) without a command in it."""
    head = src.identity.split(":")[1]
    tree, gitdir = entry / "tree", entry / "git"
    env = {**os.environ, "GIT_DIR": str(gitdir), "GIT_WORK_TREE": str(tree),
           "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> str:
        return proc.run(["git", "-c", "gc.auto=0", *args], what="making the copy's git "
                        "directory", env=env, error=InfraError)

    git("init", "--quiet", "--template=")
    theirs = proc.run(["git", "-C", str(src.tree), "rev-parse", "--path-format=absolute",
                       "--git-path", "objects"], what="reading the git state of the tree",
                      env={**os.environ, **identity.GIT_READ_ONLY}, error=UsageError).strip()
    (gitdir / "objects" / "info" / "alternates").write_text(
        f"{theirs}\n{identity.objects_dir(src.tree)}\n")
    tags = proc.run(["git", "-C", str(src.tree), "for-each-ref",
                     "--format=%(objectname) %(refname)", "refs/tags"],
                    what="reading the tree's tags", env={**os.environ, **identity.GIT_READ_ONLY},
                    error=UsageError)
    (gitdir / "packed-refs").write_text(tags)
    git("config", "core.trustctime", "false")  # linked files' ctimes move with other copies
    # where it will be once the entry is in place (a variant's linked tree names it too)
    (tree / ".git").write_text(f"gitdir: {location(src.identity).parent / 'git'}\n")
    shallow = Path(theirs).parent / "shallow"
    if shallow.is_file():  # a shallow clone: where its history stops
        shutil.copyfile(shallow, gitdir / "shallow")
    if head:
        (gitdir / "HEAD").write_text(f"{head}\n")
    # the index holds what the tester's does (what is staged): git status in the copy says
    # what it says in their tree
    staged = identity.index_tree(src.tree) or head
    if staged:
        earlier = base.parent / "git" / "index" if base is not None else None
        if earlier is not None and earlier.is_file():  # a copy made from an earlier copy:
            # its index knows the files the two share (one inode), git reads only the others
            shutil.copyfile(earlier, gitdir / "index")
            git("read-tree", "-m", staged)
        else:
            git("read-tree", staged)
    git("update-index", "-q", "--refresh")  # the index knows the files: status is quick
    git("config", "--unset", "core.worktree")  # the tree is where the .git file is


def _produce(tmp: Path, src: source.KernelSource, base: Path | None,
             differ: frozenset[str] | None, build: Path | None) -> None:
    assert src.files is not None
    files = src.files
    started = time.monotonic()
    tmp.mkdir()
    tree = tmp / "tree"
    size = 0
    if base is None or differ is None:
        say(f"copying {src.tree} into the cache ({len(files):,} files; the tester's tree is "
            "never written)")
        tree.mkdir()
        for rel, (mode, _) in files.items():
            size += _put(tree, rel, src.tree, mode)
        changed: set[str] = set()
        when = 0
    else:
        _link_tree(base, tree)
        deleted = _extra(tree, files)
        for rel in deleted:
            (tree / rel).unlink()
        changed = {rel for rel in differ if rel in files}
        for rel in sorted(changed):
            size += _put(tree, rel, src.tree, files[rel][0])
        # what the base had behind a symlinked directory the tester's tree does not have
        # (compared through the link, removed with it): copied in too
        for rel in sorted(r for r in files if not os.path.lexists(tree / r)):
            size += _put(tree, rel, src.tree, files[rel][0])
            changed.add(rel)
        changed |= set(deleted)
        when = stamps.stamp_after(base, *([build] if build else []))
        for rel in sorted(changed):
            stamps.stamp(tree, rel, when)
    if src.git:
        _git_dir(tmp, src, base if differ is not None else None)
    again = identity.content(src.tree)
    if again.identity != src.identity:
        raise UsageError(f"--kernel-src {src.tree} changed while ltoboot copied it "
                         f"({src.identity} -> {again.identity}): run again when it is still")
    seconds = time.monotonic() - started
    if base is None or differ is None:
        said = (f"copied {src.tree} into the cache: {len(files):,} files, "
                f"{size / 1024**3:.1f} GiB in {seconds:.0f} s")
    else:
        said = (f"made the cache's copy of {src.tree} from {base}: {len(changed):,} files "
                f"differ ({size / 1024**2:.1f} MiB copied), the rest linked, in {seconds:.1f} s")
    record: dict[str, Any] = {
        "identity": src.identity, "description": src.description, "origin": str(src.tree),
        "base": str(base) if base is not None and differ is not None else "",
        "changed": sorted(changed), "stamp_ns": when, "said": said}
    (tmp / source.COPY_MARKER).write_text(json.dumps(record, indent=1))


def make(src: source.KernelSource, base: Path | None = None,
         differ: frozenset[str] | None = None, build: Path | None = None) -> Copy:
    """The cache's copy of the user's tree `src` (made once per identity): from the tree
    `base` the cache owns, whose files that are not among `differ` are the same as the
    tester's (nearest.compare), its build `build` the one the copy's first build starts from;
    or, without a base, whole."""
    home = location(src.identity)
    entry = cache.publish(home.parent, lambda tmp: _produce(tmp, src, base, differ, build))
    found = Copy.of(entry / "tree")
    if found is None:
        raise InfraError(f"{entry} is not a copy ltoboot made: remove it")
    return found
