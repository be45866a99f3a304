"""A mailed series applied onto a base commit of the tester's git tree, in the cache: the
kernel source `tested-by --series` builds (reading the mail is harness/mail/series.py).

Applying never touches the tester's tree, branch or index: a clone that borrows the tree's
objects (`git clone --shared`) is checked out at the base in a temporary cache entry, the
series goes in with `git am`, and the entry (the patched tree, without .git) is renamed into
place only when every patch applied. A patch that does not apply is one error naming it, and
nothing is left behind.
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
from harness.base.errors import UsageError
from harness.base.progress import say

# git only reads the tester's repository (no index refresh, no lock)
READ_ONLY = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
RECIPE = 4  # bump when applying produces a different tree from the same inputs, or the
# series key means another thing (4: what git am applies, byte for byte, with AM_CONFIG)
MARKER = "series.json"  # beside the patched tree in its cache entry
# What `git am` applies depends on how it reads the mail (git mailsplit, git mailinfo) and on
# git apply. Fixed here, whatever the tester's git config says, so that am applies what
# Series.key names (its git mailsplit and mailinfo run with the same settings)
AM_CONFIG = {"am.keepcr": "false",  # CRLF mail: the patched files never had the CR
             "mailinfo.quotedCr": "warn",  # a CR that quoted-printable or base64 carries stays
             "mailinfo.scissors": "false",  # a "-- >8 --" line in a message is text
             "i18n.commitEncoding": "UTF-8",
             "apply.whitespace": "warn"}  # never "fix": the tree is the patch's, byte for byte
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


def changed_between(repo: Path, old: str, new: str) -> list[str] | None:
    """The paths that differ between two commits of `repo` (added, removed or changed; a
    rename is both of its paths), None when git cannot tell (a commit is not there)."""
    try:
        out = proc.run(["git", "-C", str(repo), "diff", "--name-only", "--no-renames", "-z",
                        old, new, "--"], what="listing the files two commits differ in",
                       error=UsageError, env=READ_ONLY)
    except UsageError:
        return None
    return [p for p in out.split("\0") if p]


def _apply_into(tmp: Path, repo: Path, base: str, series: PatchSet,
                record: dict[str, Any]) -> None:
    tmp.mkdir()
    tree = tmp / "tree"
    say(f"applying {len(series.patches)} patches onto {record['base_described']} "
        f"in a scratch tree ({tmp.parent})")
    proc.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(repo), str(tree)],
             what=f"cloning {repo} (borrowing its objects) for the series", env=READ_ONLY)
    proc.run(["git", "-C", str(tree), "checkout", "--quiet", "--detach", base],
             what=f"checking out {base[:12]} in the scratch tree")
    mbox = tmp / "series.mbx"
    mbox.write_bytes(series.mbox)
    env = {**os.environ, **_AM_ENV}
    # no automatic gc after it: git would leave it running in the background, past us
    with proc.running(["git", "-C", str(tree), "-c", "gc.auto=0", *git_config(AM_CONFIG),
                       "am", "--quiet",
                       "--committer-date-is-author-date", str(mbox)],
                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as p:
        output, _ = p.communicate()
    if p.returncode != 0:
        raise UsageError(f"--series: {_am_failure(str(output), series)} onto "
                         f"{record['base_described']}; nothing was applied anywhere "
                         "(rebase the series or give --base)")
    record["head"] = _git(tree, "rev-parse", "HEAD", what="reading the applied series")
    # what differs from the base: a later build of another series on a related base starts
    # from this tree's build (harness/kernel/nearest.py)
    record["changed"] = sorted(changed_between(tree, base, "HEAD") or [])
    shutil.rmtree(tree / ".git")  # borrows the tester's objects: the tree stands alone
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
    described = proc.run(["git", "-C", str(repo), "describe", "--always", "--tags", commit],
                         what="describing the base", ok=range(256),
                         env=READ_ONLY).strip() or commit[:12]
    key = cache.content_key({"recipe": RECIPE, "base": commit,
                             "patches": series.key})
    description = (f"{repo} at {described} + {len(series.patches)} patch"
                   f"{'es' if len(series.patches) != 1 else ''} of \"{series.name}\"")
    record = {"repo": str(repo), "base": commit, "base_described": described,
              "description": description, "ordered_by": series.ordered_by,
              "identity": f"series:{key}"}
    entry = cache.publish(cache.cache_root() / "series" / key,
                          lambda tmp: _apply_into(tmp, repo, commit, series, record))
    return Applied(tree=entry / "tree", base=commit, base_described=described,
                   description=description, key=key)


def marker(tree: Path) -> dict[str, Any] | None:
    """The record of a patched tree this module made (source.resolve names it by it)."""
    return cache.tree_record(tree, "series", MARKER)
