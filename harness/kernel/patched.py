"""A mailed series applied onto a base commit of the tester's git tree, in the cache: the
kernel source `tested-by --series` builds (reading the mail is harness/mail/series.py), and
the trees of its steps when a failing series is bisected (harness/runs/culprit.py).

Applying never touches the tester's tree, branch or index. Each base commit is checked out
once, into <cache>/series/base-<key>/tree (git borrows the tester's objects to do it, then the
tree stands alone), every file dated 2000-01-01: older than any build, so a build of a tree
linked to it starts from any cached build without re-timing a shared file
(harness/kernel/nearest.py). A series' tree is that tree hard-linked, the series applied with
`git am` (git writes a file it changes as a new one: the link breaks for what a patch
changes, never for the rest), and its entry keeps the applied commits (a small git directory
that borrows the tester's objects). A step's tree (patches 1..k) is the head's tree
hard-linked, the files the two differ in written anew by git checkout-index. So a series or
a step costs megabytes, not a checkout. Every entry is renamed into place only when whole; a
patch that does not apply is one error naming it, and nothing is left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.base import cache, proc
from harness.base.errors import InfraError, UsageError
from harness.base.progress import say

# git only reads the tester's repository (no index refresh, no lock)
READ_ONLY = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
RECIPE = 6  # bump when applying produces a different tree from the same inputs, or the
# series key means another thing (4: what git am applies, byte for byte, with AM_CONFIG;
# 5: trees linked to their base's, the applied commits kept; 6: no build directory linked)
MARKER = "series.json"  # beside the patched tree in its cache entry
GIT_DIR = "git"  # beside it: the applied commits (the tester's objects borrowed)
INDEX = "index"  # beside a base's tree: git's index of it, its stat data current
# every file of a base tree: older than any build, so no build's donor needs to re-time one
BASE_TIME_NS = 946_684_800 * 1_000_000_000  # 2000-01-01T00:00:00Z
# What `git am` applies depends on how it reads the mail (git mailsplit, git mailinfo) and on
# git apply. Fixed here, whatever the tester's git config says, so that am applies what
# Series.key names (its git mailsplit and mailinfo run with the same settings)
AM_CONFIG = {"am.keepcr": "false",  # CRLF mail: the patched files never had the CR
             "mailinfo.quotedCr": "warn",  # a CR that quoted-printable or base64 carries stays
             "mailinfo.scissors": "false",  # a "-- >8 --" line in a message is text
             "i18n.commitEncoding": "UTF-8",
             "apply.whitespace": "warn"}  # never "fix": the tree is the patch's, byte for byte
# How git writes a tree's files, fixed whatever the tester's git config says (a symlink as a
# symlink, bytes as committed, the executable bit kept, every file): the base, the series and
# its steps are their commits' trees
CHECKOUT_CONFIG = {"core.symlinks": "true", "core.autocrlf": "false", "core.filemode": "true",
                   "core.sparseCheckout": "false", "core.hooksPath": "/dev/null"}
# A fixed identity and dates make `git am` give the same commits for the same base and series
_AM_ENV = {"GIT_COMMITTER_NAME": "ltoboot", "GIT_COMMITTER_EMAIL": "ltoboot@localhost",
           "GIT_COMMITTER_DATE": "1970-01-01T00:00:00+00:00"}


@dataclass(frozen=True)
class PatchSet:
    """A series as applying needs it."""

    name: str
    mbox: bytes  # the patches, in order, ready for `git am`
    patches: tuple[tuple[str, str], ...]  # ("k/n", title) of each, in order
    ordered_by: str
    key: str  # what git am applies of it (Series.key): the cache entry's identity


@dataclass(frozen=True)
class Applied:
    tree: Path  # the patched tree, in the cache
    base: str  # the commit it was applied onto
    base_described: str  # as git describe names it
    description: str  # "TREE at DESCRIBE + N patches of <name>"
    key: str
    repo: Path | None = None  # the tester's repository
    name: str = ""  # the series'


def git_config(settings: dict[str, str]) -> list[str]:
    """`settings` as git's -c options, for a git command line before the subcommand."""
    return [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]


def _git(repo: Path, *args: str, what: str) -> str:
    return proc.run(["git", "-C", str(repo), *args], what=what, error=UsageError,
                    env=READ_ONLY).strip()


def _am_failure(output: str, series: PatchSet) -> str:
    """What a failed `git am` says, as one line naming the patch N/M, its subject and file."""
    m = re.search(r"^Patch failed at (\d+) ", output, re.M)
    index = int(m.group(1)) - 1 if m else 0
    number, title = series.patches[min(index, len(series.patches) - 1)]
    file = re.search(r"^error: patch failed: (\S+?):(\d+)$", output, re.M)
    other = re.search(r"^error: (\S+): (does not exist in index|already exists in working "
                      r"directory|does not match index)$", output, re.M)
    if file:
        where = f"{file.group(1)} (at line {file.group(2)})"
    elif other:
        where = f"{other.group(1)} ({other.group(2)})"
    else:
        last = [line for line in output.splitlines() if line.startswith("error:")][-1:]
        where = last[0].removeprefix("error: ") if last else "git am gave no reason"
    return f"patch {number} \"{title}\" does not apply: {where}"


def changed_between(repo: Path, old: str, new: str, *, git_dir: Path | None = None
                    ) -> list[str] | None:
    """The paths that differ between two commits of `repo` (or of the git directory
    `git_dir`): added, removed or changed, a rename both of its paths; None when git cannot
    tell (a commit is not there)."""
    where = ["--git-dir", str(git_dir)] if git_dir is not None else ["-C", str(repo)]
    try:
        out = proc.run(["git", *where, "diff-tree", "-r", "--name-only", "--no-renames", "-z",
                        old, new, "--"], what="listing the files two commits differ in",
                       error=UsageError, env=READ_ONLY)
    except UsageError:
        return None
    return [p for p in out.split("\0") if p]


def _changed(paths: list[str] | None) -> list[str]:
    """What a tree's record says it changes on its base: a build starting from another trusts
    it, so a list git could not make is an error, never "nothing changed"."""
    if paths is None:
        raise InfraError("git could not list the files the series changes on its base")
    return sorted(paths)


def _linked_copy(tree: Path, to: Path) -> None:
    """`to` made `tree`'s files, hard-linked (its directories are its own), without the
    build directories the cache keeps at its top."""
    to.mkdir()
    items = [str(p) for p in sorted(tree.iterdir()) if not p.name.startswith(cache.CACHE_OWN)]
    if items:
        proc.run(["cp", "-al", "--", *items, str(to)],
                 what=f"linking {tree} into a new tree", error=InfraError)


def _objects(repo: Path) -> str:
    return _git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir",
                what=f"finding the objects of {repo}") + "/objects"


def _age(tree: Path) -> None:
    """Every file of `tree` (a checkout the cache just made: no other links) dated
    BASE_TIME_NS."""
    for dirpath, _, filenames in os.walk(tree):
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.utime(path, ns=(BASE_TIME_NS, BASE_TIME_NS))


def _checkout_base(tmp: Path, repo: Path, base: str, record: dict[str, Any]) -> None:
    tmp.mkdir()
    tree = tmp / "tree"
    say(f"checking out {record['base_described']} once for the series applied onto it "
        f"({tmp.parent})")
    proc.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(repo), str(tree)],
             what=f"cloning {repo} (borrowing its objects) for the base", env=READ_ONLY)
    proc.run(["git", "-C", str(tree), *git_config(CHECKOUT_CONFIG), "checkout",
              "--quiet", "--detach", base], what=f"checking out {base[:12]} for the base")
    _age(tree)
    proc.run(["git", "-C", str(tree), *git_config(CHECKOUT_CONFIG), "update-index", "-q",
              "--refresh"], what="recording the base's file times in its index")
    os.replace(tree / ".git" / "index", tmp / INDEX)  # what a series applied onto it starts from
    shutil.rmtree(tree / ".git")  # borrows the tester's objects: the tree stands alone
    (tmp / MARKER).write_text(json.dumps(record, indent=2))


def _described(repo: Path, commit: str) -> str:
    return proc.run(["git", "-C", str(repo), "describe", "--always", "--tags", commit],
                    what="describing the base", ok=range(256),
                    env=READ_ONLY).strip() or commit[:12]


def base_tree(repo: Path, base: str) -> Path:
    """The checkout of commit `base` of `repo` the series applied onto it are linked to: a
    cache entry, made once per base."""
    described = _described(repo, base)
    key = cache.content_key({"recipe": RECIPE, "base": base})
    record = {"repo": str(repo), "base": base, "base_described": described,
              "description": f"{repo} at {described}", "identity": f"series:base-{key}",
              "head": base, "commits": [], "changed": []}
    entry = cache.publish(cache.cache_root() / "series" / f"base-{key}",
                          lambda tmp: _checkout_base(tmp, repo, base, record))
    return entry / "tree"


def _apply_into(tmp: Path, repo: Path, base: str, series: PatchSet,
                record: dict[str, Any], base_entry: Path) -> None:
    tmp.mkdir()
    tree = tmp / "tree"
    n = len(series.patches)
    say(f"applying {n} patch{'' if n == 1 else 'es'} onto {record['base_described']} "
        f"in a scratch tree ({tmp.parent})")
    _linked_copy(base_entry / "tree", tree)
    cache.size_record(base_entry).unlink(missing_ok=True)  # its files are shared now: measured
    # anew, each link's share (cache.disk_size)
    git = ["git", "-C", str(tree), *git_config(CHECKOUT_CONFIG)]
    proc.run([*git, "init", "--quiet"], what="making the scratch tree's git directory")
    (tree / ".git" / "objects" / "info" / "alternates").write_text(_objects(repo) + "\n")
    # the base's index: its stat data is the linked files' (a new link changes only ctime)
    proc.run([*git, "config", "core.trustctime", "false"], what="configuring the scratch tree")
    shutil.copy2(base_entry / INDEX, tree / ".git" / "index")
    proc.run([*git, "update-ref", "--no-deref", "HEAD", base],
             what=f"pointing the scratch tree at {base[:12]}")
    proc.run([*git, "update-index", "-q", "--refresh"], what="refreshing the scratch index")
    mbox = tmp / "series.mbx"
    mbox.write_bytes(series.mbox)
    env = {**os.environ, **_AM_ENV}
    # no automatic gc after it: git would leave it running in the background, past us
    with proc.running([*git, "-c", "gc.auto=0", *git_config(AM_CONFIG),
                       "am", "--quiet",
                       "--committer-date-is-author-date", str(mbox)],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as p:
        output, _ = p.communicate()
    if p.returncode != 0:
        raise UsageError(f"--series: {_am_failure(str(output), series)} onto "
                         f"{record['base_described']}; nothing was applied anywhere "
                         "(rebase the series or give --base)")
    record["head"] = _git(tree, "rev-parse", "HEAD", what="reading the applied series")
    record["commits"] = _git(tree, "rev-list", "--reverse", f"{base}..HEAD",
                             what="listing the applied commits").split()
    # what differs from the base: a later build of another series on a related base starts
    # from this tree's build (harness/kernel/nearest.py)
    record["changed"] = _changed(changed_between(tree, base, "HEAD"))
    os.replace(tree / ".git", tmp / GIT_DIR)  # kept for the steps; no git in the tree
    mbox.unlink()
    (tmp / MARKER).write_text(json.dumps(record, indent=2))


def apply(series: PatchSet, repo: Path, base: str) -> Applied:
    """`series` applied onto `base` of the git tree `repo`: a cache entry, made once."""
    repo = repo.resolve()
    if not (repo / ".git").exists():
        raise UsageError(f"--series needs --kernel-src to be a git repository to apply it to; "
                         f"{repo} is not one")
    commit = proc.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet",
                       f"{base}^{{commit}}"], what=f"resolving --base {base}", ok=range(256),
                       env=READ_ONLY)
    if not re.fullmatch(r"[0-9a-f]{40,64}\n?", commit):
        raise UsageError(f"--base {base} is not a commit of {repo}: give a branch, tag or "
                         "commit of it")
    commit = commit.strip()
    described = _described(repo, commit)
    key = cache.content_key({"recipe": RECIPE, "base": commit,
                             "patches": series.key})
    description = (f"{repo} at {described} + {len(series.patches)} patch"
                   f"{'es' if len(series.patches) != 1 else ''} of \"{series.name}\"")
    record = {"repo": str(repo), "base": commit, "base_described": described,
              "description": description, "ordered_by": series.ordered_by,
              "identity": f"series:{key}", "name": series.name,
              "patches": [list(p) for p in series.patches]}
    entry = cache.publish(cache.cache_root() / "series" / key,
                          lambda tmp: _apply_into(tmp, repo, commit, series, record,
                                                  base_tree(repo, commit).parent))
    return Applied(tree=entry / "tree", base=commit, base_described=described,
                   description=description, key=key, repo=repo, name=series.name)


def _step_into(tmp: Path, head_entry: Path, base_entry: Path, record: dict[str, Any],
               k: int) -> None:
    """Patches 1..k of the series whose entry is `head_entry`: the base's tree linked, then
    git's own checkout from the base to the step's commit (`read-tree -m -u`), which writes
    each file the two differ in as a new one and removes what the step has not."""
    tmp.mkdir()
    tree = tmp / "tree"
    git_dir = head_entry / GIT_DIR
    target = record["commits"][k - 1]
    _linked_copy(base_entry / "tree", tree)
    cache.size_record(base_entry).unlink(missing_ok=True)  # shared now: measured anew
    shutil.copy2(base_entry / INDEX, tmp / INDEX)
    env = {**READ_ONLY, "GIT_INDEX_FILE": str(tmp / INDEX)}
    git = ["git", "--git-dir", str(git_dir), "--work-tree", str(tree),
           "-c", "core.trustctime=false", *git_config(CHECKOUT_CONFIG)]
    proc.run([*git, "update-index", "-q", "--refresh"], what="refreshing the step's index",
             env=env)
    proc.run([*git, "read-tree", "-m", "-u", record["base"], target],
             what=f"checking out patches 1-{k} of the series", env=env)
    (tmp / INDEX).unlink()
    n = len(record["commits"])
    step = {**record, "head": target, "commits": record["commits"][:k],
            "identity": f"{record['identity']}-{k}",
            "description": f"{record['repo']} at {record['base_described']} + patches 1-{k} "
                           f"of {n} of \"{record.get('name', '')}\"",
            "changed": _changed(changed_between(tree, record["base"], target,
                                                git_dir=git_dir))}
    (tmp / MARKER).write_text(json.dumps(step, indent=2))


def _borrow(git_dir: Path, repo: Path) -> None:
    """The series' git directory borrows `repo`'s objects (the repository this run applied it
    from) as well as those of the repository it was first applied from, while that is there:
    a cached series whose first repository was moved, or pruned its history, still steps."""
    alternates = git_dir / "objects" / "info" / "alternates"
    mine = _objects(repo)
    listed = [line for line in alternates.read_text().splitlines() if Path(line).is_dir()]
    if mine not in listed:
        cache.write_atomic(alternates, "\n".join([mine, *listed]) + "\n")


def step_tree(applied: Applied, k: int) -> Path:
    """The tree of the series' first `k` patches applied onto its base (k = 0: the base's
    own tree; k = all: the series'): a cache entry, made once. Made from the base's tree and
    the applied commits, with the objects of the tester's repository: one that no longer has
    them is an error naming the fix."""
    record = marker(applied.tree)
    if record is None or "commits" not in record:
        raise InfraError(f"{applied.tree} has no record of its commits: apply it again")
    n = len(record["commits"])
    if k == n:
        return applied.tree
    if not 0 <= k < n:
        raise ValueError(f"step {k} of a series of {n}")
    repo = applied.repo or Path(record["repo"])
    try:
        base = base_tree(repo, record["base"])
        if k == 0:
            return base
        _borrow(applied.tree.parent / GIT_DIR, repo)
        return cache.publish(applied.tree.parent.with_name(f"{applied.key}-{k}"),
                             lambda tmp: _step_into(tmp, applied.tree.parent, base.parent,
                                                    record, k)) / "tree"
    except (InfraError, UsageError) as e:
        raise UsageError(f"cannot make the tree of patches 1-{k}: {str(e).splitlines()[0]} "
                         f"(the repository may lack the base's objects: test the series "
                         f"again from one that has {record['base'][:12]}, or remove "
                         f"{applied.tree.parent} with `ltoboot cache prune`)") from e


def marker(tree: Path) -> dict[str, Any] | None:
    """The record of a patched tree this module made (source.resolve names it by it)."""
    return cache.tree_record(tree, "series", MARKER)
