"""Reading a mailed series, applying it onto a base and writing the reply, on a small git
repository (no kernel: tests/test_tested_by_series.py builds and boots one)."""

from __future__ import annotations

import email
import email.policy
import email.utils
import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.base.errors import UsageError
from harness.mail import series
from harness.reports import reply
from tests import mailcorpus

ENV = {**os.environ, "GIT_AUTHOR_NAME": "Ann Author", "GIT_AUTHOR_EMAIL": "ann@example.org",
       "GIT_COMMITTER_NAME": "Ann Author", "GIT_COMMITTER_EMAIL": "ann@example.org",
       "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
       "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=ENV).stdout.strip()


def commit(repo: Path, name: str, text: str, message: str) -> None:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """base: README; the series (3 patches) on top, then the branch is reset to base."""
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    commit(r, "README", "hello\n", "base")
    git(r, "tag", "base")
    commit(r, "README", "hello\nworld\n", "README: add world")
    commit(r, "a.c", "int a;\n", "a: new file")
    commit(r, "README", "hello\nworld\nagain\n", "README: again")
    return r


def format_patch(repo: Path, out: Path, *extra: str) -> Path:
    git(repo, "format-patch", "-q", "--cover-letter", "-o", str(out), "--to",
        "Maintainer <maint@example.org>", "--cc", "list@example.org", "--cc",
        "Tess Tester <tess@example.org>", *extra, "base..HEAD")
    cover = next(out.glob("*0000-cover-letter.patch"))
    cover.write_text(cover.read_text().replace("*** SUBJECT HERE ***", "Add world")
                     .replace("*** BLURB HERE ***", "This series adds the world.\n"
                              "It is small.\n\nMore words nobody quotes."))
    return out


def mbox(directory: Path, into: Path, order: list[int] | None = None) -> Path:
    files = sorted(directory.iterdir())
    if order is not None:
        files = [files[i] for i in order]
    into.write_bytes(b"".join(f.read_bytes() for f in files))
    return into


def test_mailed_series_is_ordered_by_b4_and_applied_in_the_cache(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    sent = format_patch(repo, tmp_path / "sent", "--thread")
    box = mbox(sent, tmp_path / "series.mbox", order=[2, 0, 3, 1])  # as a thread may come
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    s = series.read(box, tmp_path)
    assert s.ordered_by.startswith("b4 ")
    assert [p.number for p in s.patches] == ["1/3", "2/3", "3/3"]
    assert [p.title for p in s.patches] == ["README: add world", "a: new file",
                                            "README: again"]
    assert s.cover is not None and s.cover.title == "Add world"
    applied = series.apply(s, repo, "base")
    assert (applied.tree / "README").read_text() == "hello\nworld\nagain\n"
    assert (applied.tree / "a.c").is_file() and not (applied.tree / ".git").exists()
    assert applied.base == git(repo, "rev-parse", "base")
    # the tester's tree, branch and index as they were; no worktree added
    assert git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == status
    assert len(git(repo, "worktree", "list").splitlines()) == 1
    again = series.apply(series.read(box, tmp_path), repo, "base")  # the same: one entry
    assert again.tree == applied.tree


def test_format_patch_files_without_message_ids_go_by_their_numbers(
        repo: Path, tmp_path: Path) -> None:
    sent = format_patch(repo, tmp_path / "sent")  # no --thread: no Message-ID
    s = series.read(mbox(sent, tmp_path / "shuffled.mbox", order=[3, 1, 0, 2]), tmp_path)
    assert s.ordered_by == "the [PATCH k/n] numbers"
    assert [p.title for p in s.patches] == ["README: add world", "a: new file",
                                            "README: again"]
    assert series.read(sent, tmp_path).patches == s.patches  # the directory itself


def test_newest_revision_wins(repo: Path, tmp_path: Path) -> None:
    v1 = format_patch(repo, tmp_path / "v1")
    v2 = format_patch(repo, tmp_path / "v2", "-v2")
    mbox(v1, tmp_path / "a.mbox")
    both = tmp_path / "both.mbox"
    both.write_bytes((tmp_path / "a.mbox").read_bytes() + mbox(v2, tmp_path / "b.mbox")
                     .read_bytes())
    s = series.read(both, tmp_path)
    assert all("v2" in p.subject for p in s.patches) and len(s.patches) == 3


@pytest.mark.parametrize(("tags", "threaded", "order"), [
    ("v2", True, [0, 1, 2]), ("RFC,v3", False, [2, 0, 1]), ("net-next,v2", True, [2, 1, 0]),
], ids=["v2-threaded", "rfc-no-references", "list-tag-reversed"])
def test_a_patchwork_series_mbox_is_never_falsely_incomplete(
        repo: Path, tmp_path: Path, tags: str, threaded: bool, order: list[int]) -> None:
    """Patchwork's series mbox names its patches `[v2,1/3] title`: b4 reads no number in
    that and leaves patches out; the series is whole by the subjects' numbers, which order
    it, and ordered_by says why."""
    sent = format_patch(repo, tmp_path / "sent")
    patches = [f for f in sorted(sent.iterdir()) if "0000-cover-letter" not in f.name]
    box = tmp_path / "patchwork.mbox"
    box.write_bytes(mailcorpus._patchwork(patches, tags, threaded, order))
    s = series.read(box, tmp_path)
    assert [(p.number, p.title) for p in s.patches] == [
        ("1/3", "README: add world"), ("2/3", "a: new file"), ("3/3", "README: again")]
    assert re.fullmatch(r"the \[PATCH k/n\] numbers \(b4 \S+ (left out|gave) [\d/, ]+\)",
                        s.ordered_by), s.ordered_by


def test_a_series_with_a_patch_missing_is_refused(repo: Path, tmp_path: Path) -> None:
    sent = format_patch(repo, tmp_path / "sent")
    (sorted(sent.iterdir())[2]).unlink()  # 2/3
    with pytest.raises(UsageError, match=r"not whole: 2/3 missing"):
        series.read(sent, tmp_path)


def test_a_file_without_patches_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("Subject: hello\n\nno diff here\n")
    with pytest.raises(UsageError, match="no patch in it"):
        series.read(f, tmp_path)
    with pytest.raises(UsageError, match="no such file"):
        series.read(tmp_path / "absent.mbox", tmp_path)


def test_a_patch_that_does_not_apply_is_named_and_nothing_is_left(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    sent = format_patch(repo, tmp_path / "sent", "--thread")
    git(repo, "checkout", "-q", "-b", "other", "base")
    commit(repo, "a.c", "int b;\n", "a: someone else's a.c")  # 2/3 creates a.c
    head = git(repo, "rev-parse", "HEAD")
    s = series.read(sent, tmp_path)
    with pytest.raises(UsageError) as e:
        series.apply(s, repo, "other")
    message = str(e.value)
    assert "patch 2/3 \"a: new file\" does not apply: a.c" in message
    assert "\n" not in message
    # only the cache's own bookkeeping (lock, failure record, use) and the base's whole
    # checkout (a later series onto it links to it): no series tree, no temporary
    left = [p for p in (tmp_path / "cache" / "series").iterdir()
            if not p.name.endswith((".lock", ".failed.json", ".use", ".size"))]
    assert [p.name[:5] for p in left] == ["base-"] and (left[0] / "series.json").is_file()
    assert git(repo, "rev-parse", "HEAD") == head and git(repo, "status", "--porcelain") == ""


def test_base_must_be_a_commit_and_the_tree_a_repository(repo: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    s = series.read(format_patch(repo, tmp_path / "sent"), tmp_path)
    with pytest.raises(UsageError, match="--base nosuch is not a commit"):
        series.apply(s, repo, "nosuch")
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(UsageError, match="to be a git repository"):
        series.apply(s, plain, "HEAD")


FACTS: dict[str, object] = {
    "passed": True, "tested_by": "Tess Tester <tess@example.org>", "compiler": "clang 19",
    "series": {"base_described": "v6.1", "base": "0123456789abcdef"},
    "arches": [{"arch": "x86_64", "lto": "thin", "proc_version": "Linux version 6.1.192 "
                "(clang version 19.1.7, LLD 19.1.7)",
                "lto_config": "# CONFIG_LTO_NONE is not set\nCONFIG_LTO_CLANG_THIN=y",
                "checks": [{"name": "basic", "verdict": "PASS", "passed": True,
                            "skipped": False},
                           {"name": "cfi", "verdict": "SKIP", "passed": True,
                            "skipped": True}]}]}


def test_reply_is_threaded_under_the_cover_to_everyone_but_the_tester(
        repo: Path, tmp_path: Path) -> None:
    s = series.read(format_patch(repo, tmp_path / "sent", "--thread"), tmp_path)
    assert s.cover is not None
    text = reply.reply(s, FACTS, "Tess Tester", "tess@example.org")
    msg = email.message_from_string(text, policy=email.policy.default)
    assert msg["Subject"] == "Re: [PATCH 0/3] Add world"
    assert msg["In-Reply-To"] == s.cover.message_id
    assert msg["References"].split()[-1] == s.cover.message_id
    assert email.utils.parseaddr(msg["From"]) == ("Tess Tester", "tess@example.org")
    assert [a for _, a in email.utils.getaddresses([msg["To"]])] == ["ann@example.org"]
    assert [a for _, a in email.utils.getaddresses([msg["Cc"]])] == ["maint@example.org",
                                                                    "list@example.org"]
    body = msg.get_content()
    assert "> This series adds the world.\n> It is small.\n\n" in body
    assert "More words" not in body
    assert "\nTested-by: Tess Tester <tess@example.org>\n" in body
    assert "# cat /proc/version\nLinux version 6.1.192 (clang version" in body
    assert "# zgrep 'LTO[_=]' /proc/config.gz\n# CONFIG_LTO_NONE is not set" in body
    assert "x86_64: 1 of 2 checks passed, 1 skipped (cfi); ThinLTO, clang 19" in body
    assert body.index("Tested-by") < body.index("/proc/version")


def test_no_reply_for_a_failed_run(repo: Path, tmp_path: Path) -> None:
    s = series.read(format_patch(repo, tmp_path / "sent"), tmp_path)
    with pytest.raises(AssertionError):
        reply.reply(s, {**FACTS, "passed": False}, "Tess", "tess@example.org")


EVIL = """From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Eve <eve@example.org>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH] evil: {what}

---
diff --git a/{path} b/{path}
new file mode 100755
index 0000000..1111111
--- /dev/null
+++ b/{path}
@@ -0,0 +1,2 @@
+#!/bin/sh
+touch {mark}
--
2.39.5
"""


@pytest.mark.parametrize(("what", "path", "says"), [
    ("a hook", ".git/hooks/post-applypatch", "invalid path '.git/hooks/post-applypatch'"),
    ("an escape", "../../escape", "invalid path '../../escape'"),
])
def test_a_patch_reaching_outside_the_tree_is_refused(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, what: str, path: str,
        says: str) -> None:
    """A mailed patch is hostile until applied: nothing lands outside the scratch tree."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    mark = tmp_path / "pwned"
    patch = tmp_path / "evil.patch"
    patch.write_text(EVIL.format(what=what, path=path, mark=mark))
    with pytest.raises(UsageError, match=rf"patch 1/1 \"evil: {what}\" does not apply: .*"
                       + re.escape(says)):
        series.apply(series.read(patch, tmp_path), repo, "HEAD")
    assert not mark.exists() and not (tmp_path / "escape").exists()
    assert not (tmp_path / "cache" / "escape").exists()


def test_when_b4_finds_no_series_the_numbers_may_still_make_one(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """b4 failing is its verdict only when the subjects' numbers make no whole series either."""
    sent = format_patch(repo, tmp_path / "sent", "--thread")

    def no_series(*args: object) -> None:
        raise UsageError("--series x: b4 0.16.0 found no series to apply (...)")

    monkeypatch.setattr(series, "_with_b4", no_series)
    s = series.read(sent, tmp_path)
    assert [p.number for p in s.patches] == ["1/3", "2/3", "3/3"] and s.cover is not None
    assert re.fullmatch(r"the \[PATCH k/n\] numbers \(b4 \S+ found no series\)", s.ordered_by)
    (sorted(sent.iterdir())[2]).unlink()  # 2/3: now b4's verdict stands
    with pytest.raises(UsageError, match="found no series to apply"):
        series.read(sent, tmp_path)


def test_a_patchs_author_is_the_one_git_mailinfo_reads(tmp_path: Path) -> None:
    """Who wrote each patch, as `git am` records it (git mailinfo is the judge): a patch sent
    by someone else (an in-body From, RFC 2047 encoded), one whose message quotes a `From:`
    line indented, and one by its sender."""
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    commit(r, "README", "hello\n", "base")
    git(r, "tag", "base")
    env = {**ENV, "GIT_AUTHOR_NAME": "Jörg Rödel", "GIT_AUTHOR_EMAIL": "joro@example.org"}
    (r / "README").write_text("hello\nworld\n")
    subprocess.run(["git", "-C", str(r), "commit", "-q", "-a", "-m", "README: world"],
                   check=True, env=env)
    (r / "README").write_text("hello\nworld\nagain\n")
    git(r, "commit", "-q", "-a", "-m",
        "README: again\n\n  From: Quoted Reporter <quoted@example.org>\n  wrote it breaks.")
    for sent, authors in (("--from=Sub Mitter <sub@example.org>", ["Jörg Rödel", "Ann Author"]),
                          ("--no-from", ["Jörg Rödel", "Ann Author"])):
        out = tmp_path / sent.partition("=")[0]
        git(r, "format-patch", "-q", sent, "-o", str(out), "base..main")
        s = series.read(out, tmp_path)
        for path, mail in zip(sorted(out.iterdir()), s.patches, strict=True):
            info = subprocess.run(["git", "mailinfo", str(tmp_path / "m"),
                                   str(tmp_path / "p")], input=path.read_bytes(),
                                  capture_output=True, check=True).stdout
            said = dict(line.split(": ", 1) for line in info.decode().splitlines()
                        if ": " in line)
            assert email.utils.parseaddr(mail.author) == (said["Author"], said["Email"]), path
        assert [email.utils.parseaddr(m.author)[0] for m in s.patches] == authors
