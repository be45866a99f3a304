"""KCIDB documents (KernelCI's format) from reports: every status a run can end in maps to
KCIDB's (PASS, FAIL with the console excerpt, SKIP with its reason, MISS for what could not
run because the kernel failed first, ERROR for a lab's or machine's failure, never FAIL), ids
are stable across runs, and KernelCI's own schema (kcidb-io) is the judge: a hand-broken
document is refused and never written. Documents from real runs: tests/test_kcidb_runs.py."""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.base.errors import BuildError, InfraError, KernelFailure
from harness.checks import CheckResult
from harness.kernel import source
from harness.kernel.model import META, BuildSpec, Checkout, Kernel, PlannedBuildError
from harness.reports import kcidb
from harness.reports.results import KernelReport, Stage
from harness.runs.culprit import Finding, Outcome, PatchRef, Step
from harness.runs.lava import job, verdicts
from tests.synthetic import git, kernel_repo

NAMES = ["proc_version", "modversions", "pci_fixups"]


def kernel(tmp: Path, arch: str = "x86_64") -> Kernel:
    (tmp / "config").write_text("CONFIG_LTO_CLANG_THIN=y\n")
    return Kernel(arch=arch, lto="thin", release="6.1.192", image=tmp / "bzImage",
                  config=tmp / "config", system_map=None, modules=None, build_dir=None,
                  source_tree=None, compiler="Debian clang version 19.1.7", linker="LLD 19",
                  llvm_major=19, source="prebuilt /k/bzImage", key=f"key-{arch}",
                  build_seconds=300.5, extra={"prebuilt": f"/k/{arch}/bzImage"})


def report(tmp: Path, arch: str = "x86_64") -> KernelReport:
    k = kernel(tmp, arch)
    return KernelReport(label=f"{arch}-thin-prebuilt", kernel=k, accel="tcg",
                        boot_seconds=1.4, console_log="/logs/boot.log",
                        spec=BuildSpec(arch=arch, prebuilt=f"/k/{arch}/bzImage"))


def run(run_id: str = "run1", errors: dict[str, str] | None = None) -> kcidb.Run:
    return kcidb.Run(id=run_id, started=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
                     errors=errors or {})


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    tests = doc["tests"]
    return {t["path"]: t["status"] for t in tests}


def test_a_passing_kernel_with_a_skip_and_a_failure(tmp_path: Path) -> None:
    rep = report(tmp_path)
    long = "x" * 20000 + "\n[ 1.0] the end of the console"
    rep.results = [CheckResult("proc_version", True, "clang and LLD", "Linux version 6.1"),
                   CheckResult("modversions", False, "a wrong CRC was loaded", long),
                   CheckResult("pci_fixups", True, "skipped: applies to x86_64 only",
                               skipped=True)]
    doc = kcidb.document([rep], run(), NAMES)
    kcidb.validate(doc)
    assert statuses(doc) == {"boot": "PASS", "ltoboot.proc_version": "PASS",
                             "ltoboot.modversions": "FAIL", "ltoboot.pci_fixups": "SKIP"}
    tests = {t["path"]: t for t in doc["tests"]}
    failed = tests["ltoboot.modversions"]
    assert len(failed["log_excerpt"]) == kcidb.EXCERPT
    assert failed["log_excerpt"].endswith("the end of the console")
    assert tests["ltoboot.pci_fixups"]["comment"] == "skipped: applies to x86_64 only"
    assert tests["boot"]["duration"] == 1.4
    assert tests["boot"]["environment"]["misc"] == {"machine": "q35", "accel": "tcg"}
    (build,) = doc["builds"]
    assert build["id"] == "ltoboot:build:key-x86_64" and build["status"] == "PASS"
    assert build["architecture"] == "x86_64" and build["duration"] == 300.5
    assert build["misc"]["lto"] == "thin" and build["misc"]["kernel_release"] == "6.1.192"


def test_a_boot_that_panics_fails_boot_and_misses_the_checks(tmp_path: Path) -> None:
    rep = report(tmp_path).fail(Stage.BOOT, KernelFailure(
        "panic", "Kernel panic - not syncing: Requested init /nonexistent failed",
        "[ 0.9] Kernel panic - not syncing: Requested init /nonexistent failed"))
    doc = kcidb.document([rep], run(), NAMES)
    kcidb.validate(doc)
    assert statuses(doc) == {"boot": "FAIL", **{f"ltoboot.{n}": "MISS" for n in NAMES}}
    assert "Requested init /nonexistent" in doc["tests"][0]["log_excerpt"]


def test_a_kernel_that_does_not_build(tmp_path: Path) -> None:
    rep = KernelReport(label="x86_64-thin-prebuilt",
                       spec=BuildSpec(arch="x86_64", prebuilt="/k/bzImage")).fail(
        Stage.BUILD, "make (all) failed (exit 2)")
    doc = kcidb.document([rep], run(), NAMES)
    kcidb.validate(doc)
    assert doc["builds"][0]["status"] == "FAIL"
    assert set(statuses(doc).values()) == {"MISS"}


def test_a_job_lava_could_not_run_is_error_not_fail(recorded: Path, tmp_path: Path) -> None:
    """The recorded log of a LAVA job that could not fetch its kernel: InfraError, and in
    KCIDB the boot is ERROR, the checks MISS, with LAVA's own words."""
    k = kernel(tmp_path)
    j = job.Job(k, "", tmp_path / "job.yaml", (), "")
    with pytest.raises(InfraError) as e:
        verdicts.kernel_report(k, [j], {j: recorded / "lava" / "x86_64-missing-kernel.log"},
                               NAMES)
    rep = KernelReport(label=k.label, kernel=k, spec=BuildSpec(arch="x86_64", prebuilt="/k"))
    doc = kcidb.document([rep], run(errors={k.label: str(e.value)}), NAMES)
    kcidb.validate(doc)
    assert statuses(doc) == {"boot": "ERROR", **{f"ltoboot.{n}": "MISS" for n in NAMES}}
    assert "does not exist" in doc["tests"][0]["log_excerpt"]


def test_ids_are_stable_across_runs_of_the_same_kernel(tmp_path: Path) -> None:
    one = kcidb.document([report(tmp_path)], run("a"), NAMES)
    two = kcidb.document([report(tmp_path)], run("b"), NAMES)
    assert one["builds"] == two["builds"] and one["checkouts"] == two["checkouts"]
    ids = [{t["id"] for t in d["tests"]} for d in (one, two)]
    assert not ids[0] & ids[1]  # two runs of one build
    both = kcidb.document([report(tmp_path), report(tmp_path, "arm64")], run(), NAMES)
    assert len(both["checkouts"]) == 2 and len(both["builds"]) == 2


def test_the_same_kernel_given_twice_is_checked_once(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """`--kernel K --kernel K` (or K by another path): one kernel to check, not two."""
    from harness.faces.cli_args import parser
    from harness.kernel import prebuilt
    from harness.runs import options

    monkeypatch.setattr(prebuilt, "arch_of", lambda ref: "x86_64")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "k").mkdir()
    given = [str(tmp_path / "k"), str(tmp_path / "k"), "k/", "https://example.org/k/",
             "https://example.org/k/", str(tmp_path / "other")]
    args = parser().parse_args(["run", *(a for k in given for a in ("--kernel", k))])
    specs = options.kernel_specs(vars(args))
    assert [s.prebuilt for s in specs] == [str(tmp_path / "k"), "https://example.org/k/",
                                           str(tmp_path / "other")]


def test_a_document_never_holds_an_id_twice(tmp_path: Path) -> None:
    """A build reported twice in one run (the same kernel reached by two ways) is one build;
    each check of it keeps its tests, under ids of their own: KCIDB merges objects of one
    id, and one result would be lost."""
    one, two = report(tmp_path), report(tmp_path)
    two.results = [CheckResult("proc_version", False, "not clang", "Linux version 6.1 gcc")]
    doc = kcidb.document([one, two], run(), NAMES)
    kcidb.validate(doc)
    for kind in ("checkouts", "builds", "tests"):
        ids = [o["id"] for o in doc[kind]]
        assert len(ids) == len(set(ids)), kind
    assert len(doc["builds"]) == 1 and len(doc["tests"]) == 2 * (1 + len(NAMES))
    failed = [t for t in doc["tests"] if t["status"] == "FAIL"]
    assert [t["path"] for t in failed] == ["ltoboot.proc_version"]


def test_a_hand_broken_document_is_refused_and_never_written(tmp_path: Path) -> None:
    good = kcidb.document([report(tmp_path)], run(), NAMES)
    for breakage in ("lower-case status", "no origin", "bad id", "null"):
        bad = copy.deepcopy(good)
        test = bad["tests"][0]
        if breakage == "lower-case status":
            test["status"] = "pass"
        elif breakage == "no origin":
            del test["origin"]
        elif breakage == "bad id":
            test["id"] = "no colon here"
        else:
            test["comment"] = None
        with pytest.raises(kcidb.InvalidDocument, match="refuses the document"):
            kcidb.validate(bad)
        out = tmp_path / "kcidb.json"
        with pytest.raises(kcidb.InvalidDocument):
            kcidb.write(out, bad)
        assert not out.exists()
    kcidb.write(tmp_path / "good.json", good)
    assert (tmp_path / "good.json").is_file()


# -- the checkout travels with the kernel: nothing is asked again after the run ---------------

REPORTS = Path(kcidb.__file__).parent
ASKING = {"subprocess", "harness.base.proc", "harness.kernel.build", "harness.kernel.source",
          "harness.kernel.patched"}


def _imported(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_the_renderers_ask_nothing_after_the_run() -> None:
    """No renderer runs git, resolves the source again or calls the build planner: what they
    say of a checkout and a build is what the kernel (or its failed build) carries."""
    pages = sorted(REPORTS.glob("*.py"))
    assert {p.name for p in pages} >= {"kcidb.py", "tested_by.py", "text.py", "junit.py"}
    for page in pages:
        tree = ast.parse(page.read_text())
        assert not _imported(tree) & ASKING, f"{page.name}: {_imported(tree) & ASKING}"
        called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
        asked = {c for c in called if c.split(".")[-1] in ("resolve", "plan", "build_kernel")
                 and c.split(".")[0] in ("resolve", "plan", "build_kernel", "source", "build")}
        assert not asked, f"{page.name}: {asked}"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tester's git tree: a tag, a commit after it, an https origin, an uncommitted edit."""
    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    r = kernel_repo(tmp_path / "linux")
    git(r, "tag", "-a", "-m", "v6.1", "v6.1")
    (r / "init" / "main.c").write_text("int main2;\n")
    git(r, "commit", "-q", "-am", "next")
    git(r, "remote", "add", "origin", "https://git.example.org/linux.git")
    (r / "init" / "main.c").write_text("int changed;\n")  # not committed
    return r


def _no_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a command ran while reporting: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_a_git_checkout_is_read_once_at_plan_time_and_carried(repo: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    before = {p: p.stat().st_mtime_ns for p in repo.rglob("*")}
    src = source.resolve(repo)
    found = source.checkout_of(src)
    head = git(repo, "rev-parse", "HEAD")
    assert (found.commit, found.described) == (head, f"v6.1-1-g{head[:7]}")  # never --dirty
    assert found.local_changes and found.identity == src.identity
    assert found.remote_url == "https://git.example.org/linux.git"
    assert (found.tree, found.version) == (str(repo), "6.1.0")
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*")} == before  # only read
    out = tmp_path / "out"
    out.mkdir()
    k = dataclasses.replace(kernel(out), extra={}, checkout=found)
    k.save(out)
    loaded = Kernel.load(out)
    assert loaded.checkout == found
    _no_commands(monkeypatch)
    doc = kcidb.document([KernelReport(label=k.label, kernel=loaded,
                                       spec=BuildSpec(arch="x86_64", kernel_src=str(repo)))],
                         run(), NAMES)
    kcidb.validate(doc)
    (checkout,) = doc["checkouts"]
    assert "tree_name" not in checkout  # a tree KernelCI does not know by a name
    assert checkout["git_commit_hash"] == head
    assert checkout["git_commit_name"] == f"v6.1-1-g{head[:7]}"
    assert checkout["git_repository_url"] == "https://git.example.org/linux.git"
    assert checkout["misc"] == {"identity": src.identity, "version": "6.1.0",
                                "local_changes": found.local_changes}
    assert checkout["comment"] == src.description


def checkout_doc(found: Checkout, tmp: Path) -> dict[str, Any]:
    k = dataclasses.replace(kernel(tmp), extra={}, checkout=found)
    doc = kcidb.document([KernelReport(label=k.label, kernel=k, spec=BuildSpec(arch="x86_64"))],
                         run(), NAMES)
    kcidb.validate(doc)
    assert len(doc["checkouts"]) == 1
    checkout: dict[str, Any] = doc["checkouts"][0]
    return checkout


def test_a_dirty_tree_is_its_head_and_a_patch_of_its_local_changes(
        repo: Path, tmp_path: Path) -> None:
    """Changes to tracked files and untracked files, as one patch onto HEAD (from the tree
    the identity names, read at plan time): its patchset_hash, no patchset_files (a local
    diff has no URL), and an id of its own; a clean HEAD has no patches ("")."""
    (repo / "init" / "new.c").write_bytes(b"int new;\n\0binary\n")  # untracked
    before = {p: p.stat().st_mtime_ns for p in repo.rglob("*")}
    dirty = source.checkout_of(source.resolve(repo))
    assert {p: p.stat().st_mtime_ns for p in repo.rglob("*")} == before  # only read
    out = tmp_path / "dirty"
    out.mkdir()
    checkout = checkout_doc(dirty, out)
    # the patch made independently: a scratch index of everything, diffed with HEAD
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp_path / "scratch-index")}
    subprocess.run(["git", "-C", str(repo), "read-tree", "HEAD"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    patch = subprocess.run(["git", "-C", str(repo), "diff", "--cached", "--binary",
                            "--no-renames", "HEAD"], check=True, env=env,
                           capture_output=True).stdout
    assert b"init/new.c" in patch and b"int changed;" in patch
    (tmp_path / "local.patch").write_bytes(patch)
    assert checkout["patchset_hash"] == sha256sum(tmp_path, ["local.patch"])
    assert "patchset_files" not in checkout
    assert checkout["git_commit_hash"] == git(repo, "rev-parse", "HEAD")
    git(repo, "stash", "-q", "-u")
    clean = source.checkout_of(source.resolve(repo))
    out = tmp_path / "clean"
    out.mkdir()
    clean_checkout = checkout_doc(clean, out)
    assert clean_checkout["patchset_hash"] == ""  # no patches were applied
    assert clean_checkout["git_commit_hash"] == checkout["git_commit_hash"]
    assert clean_checkout["id"] != checkout["id"]


MAINLINE = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git"
STABLE = "https://git.kernel.org/pub/scm/linux/kernel/git/stable/linux.git"
NEXT = "https://git.kernel.org/pub/scm/linux/kernel/git/next/linux-next.git"


@pytest.mark.parametrize(("url", "name"), [
    (MAINLINE, "mainline"), (STABLE, "stable"), (NEXT, "next"),
    ("https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux", "mainline"),
    ("git://git.kernel.org/pub/scm/linux/kernel/git/stable/linux-stable-rc.git", "stable-rc"),
    ("git@gitolite.kernel.org:pub/scm/linux/kernel/git/netdev/net-next.git", "net-next"),
    ("https://kernel.googlesource.com/pub/scm/linux/kernel/git/torvalds/linux", "mainline"),
    ("https://github.com/torvalds/linux.git", "mainline"),
    ("https://git.kernel.org/pub/scm/linux/kernel/git/someone/linux.git", ""),
    ("https://git.example.org/linux.git", ""), ("/home/t/linux", ""), ("", ""),
])
def test_tree_name_is_one_kernelci_knows_or_none(url: str, name: str, tmp_path: Path) -> None:
    checkout = checkout_doc(Checkout(identity="git:" + "c" * 40 + ":", commit="c" * 40,
                                     remote_url=url, remote_branch="master"), tmp_path)
    assert checkout.get("tree_name") == (name or None)
    https = url.startswith("https://")
    assert checkout.get("git_repository_url") == (url if https else None)
    assert checkout.get("git_repository_branch") == ("master" if https else None)


def test_a_remotes_credentials_stay_out_of_the_document(tmp_path: Path) -> None:
    c = Checkout(identity="git:" + "c" * 40 + ":", commit="c" * 40,
                 remote_url="https://tess:s3cret@git.kernel.org/pub/scm/linux/kernel/git/"
                            "torvalds/linux.git")
    checkout = checkout_doc(c, tmp_path)
    assert "s3cret" not in json.dumps(checkout) and "tess" not in json.dumps(checkout)
    assert checkout["git_repository_url"] == MAINLINE


def test_the_branch_is_the_upstream_the_commit_is_on(repo: Path) -> None:
    """The remote and branch the tester's current branch follows, read at plan time; the
    branch only while HEAD is on it (a local commit on top is on no branch of the remote)."""
    git(repo, "remote", "add", "stable", STABLE)
    git(repo, "update-ref", "refs/remotes/stable/linux-6.1.y", "HEAD")
    git(repo, "branch", "--set-upstream-to=stable/linux-6.1.y")
    found = source.checkout_of(source.resolve(repo))
    assert (found.remote_url, found.remote_branch) == (STABLE, "linux-6.1.y")
    git(repo, "commit", "-q", "-am", "local")
    found = source.checkout_of(source.resolve(repo))
    assert (found.remote_url, found.remote_branch) == (STABLE, "")
    git(repo, "branch", "--unset-upstream")
    git(repo, "checkout", "-q", "--detach")
    found = source.checkout_of(source.resolve(repo))
    assert (found.remote_url, found.remote_branch) == ("https://git.example.org/linux.git", "")


def test_a_series_base_is_named_by_the_testers_remote(sent: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.mail import series

    monkeypatch.setenv("LTOBOOT_CACHE", str(tmp_path / "cache"))
    author = tmp_path / "author"
    git(author, "remote", "add", "origin", NEXT)
    git(author, "update-ref", "refs/remotes/origin/master", "base")
    git(author, "branch", "--set-upstream-to=origin/master")
    applied = series.apply(series.read(sent, tmp_path), author, "base")
    found = source.checkout_of(source.resolve(applied.tree))
    assert (found.remote_url, found.remote_branch) == (NEXT, "master")
    checkout = checkout_doc(found, tmp_path)
    assert (checkout["tree_name"], checkout["git_repository_url"]) == ("next", NEXT)
    assert checkout["git_repository_branch"] == "master"
    assert checkout["git_commit_hash"] == git(author, "rev-parse", "base")


def test_metadata_from_before_checkouts_still_loads(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    k = dataclasses.replace(kernel(tmp_path), extra={})
    raw = json.loads(k.to_json(tmp_path))
    del raw["checkout"]
    (tmp_path / META).write_text(json.dumps(raw))
    old = Kernel.load(tmp_path)
    assert old.checkout == Checkout() and old.key == k.key
    _no_commands(monkeypatch)
    doc = kcidb.document([KernelReport(label=old.label, kernel=old,
                                       spec=BuildSpec(arch="x86_64"))], run(), NAMES)
    kcidb.validate(doc)
    assert doc["checkouts"][0]["comment"] == old.source


def test_a_kernel_that_did_not_build_is_named_by_its_plan(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The build's key and checkout come with its error (build_kernel raises it), so the
    report does not plan the build again."""
    made = BuildError("build x86_64-thin: make (all) failed (exit 2)", Path("/logs/b.log"),
                      "make: *** [Makefile:250: __sub-make] Error 2")
    e = PlannedBuildError(made, "planned-key", Checkout(
        identity="series:abc", description="linux at v6.1 + 2 patches",
        tree="/cache/series/abc/tree", version="6.1.0", commit="c" * 40, described="v6.1",
        repository="/home/t/linux"))
    assert str(e) == str(made) and (e.log, e.tail) == (made.log, made.tail)
    rep = KernelReport(label="x86_64-thin", spec=BuildSpec(arch="x86_64")).fail(Stage.BUILD, e)
    _no_commands(monkeypatch)
    doc = kcidb.document([rep], run(), NAMES)
    kcidb.validate(doc)
    assert doc["builds"][0]["id"] == "ltoboot:build:planned-key"
    assert doc["builds"][0]["status"] == "FAIL"
    (checkout,) = doc["checkouts"]
    assert checkout["git_commit_hash"] == "c" * 40 and checkout["git_commit_name"] == "v6.1"
    assert checkout["misc"]["repository"] == "/home/t/linux"


# -- a mailed series as KernelCI names it ---------------------------------------------------

MBOX_FROM = b"From mboxrd@z Thu Jan  1 00:00:00 1970\n"


@pytest.fixture
def sent(tmp_path: Path) -> Path:
    """A series as `git format-patch --thread --cover-letter` writes it: a cover letter and
    two patches (one of them binary), each a file."""
    r = tmp_path / "author"
    r.mkdir()
    git(r, "init", "-q")
    (r / "README").write_text("hello\n")
    (r / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (r / "Kconfig").write_text("")
    git(r, "add", "-A")
    git(r, "commit", "-q", "-m", "base")
    git(r, "tag", "base")
    (r / "README").write_text("hello\nworld\n")
    git(r, "commit", "-q", "-am", "README: add world")
    (r / "logo.bin").write_bytes(bytes(range(256)))
    git(r, "add", "logo.bin")
    git(r, "commit", "-q", "-m", "logo: add it")
    out = tmp_path / "sent"
    git(r, "format-patch", "-q", "--thread", "--cover-letter", "-o", str(out), "base..HEAD")
    cover = next(out.glob("0000-*"))
    cover.write_text(cover.read_text().replace("*** SUBJECT HERE ***", "World and logo"))
    return out


def sha256sum(folder: Path, names: list[str]) -> str:
    """The schema's own recipe, by the shell: `sha256sum *.patch | cut -c-64 | sha256sum`."""
    return subprocess.run(["sh", "-c", 'sha256sum "$@" | cut -c-64 | sha256sum | cut -c-64',
                           "sh", *names], cwd=folder, check=True, capture_output=True,
                          text=True).stdout.strip()


def series_report(tmp: Path) -> KernelReport:
    k = dataclasses.replace(kernel(tmp), extra={}, checkout=Checkout(
        identity="series:abc", description="linux at v6.1 + 2 patches", commit="c" * 40,
        described="v6.1", repository="/home/t/linux"))
    return KernelReport(label=k.label, kernel=k, spec=BuildSpec(arch="x86_64"))


def test_patchset_hash_is_the_schemas_over_the_patches_as_given(sent: Path, tmp_path: Path
                                                               ) -> None:
    """A directory of patch files: sha256sum of each file (the cover letter is no patch); an
    mbox as a list archive serves it, in any order: of each message without its From line.
    b4 rewrites the patches it orders: the hash is of what was mailed, not of b4's mbox."""
    from harness.mail import series

    patches = sorted(p.name for p in sent.glob("000[1-9]-*.patch"))
    for work in ("work-dir", "work-mbox"):
        (tmp_path / work).mkdir()
    s = series.read(sent, tmp_path / "work-dir")
    assert s.ordered_by.startswith("b4 ")
    facts = kcidb.series_facts(s)
    assert facts["patchset_hash"] == sha256sum(sent, patches)
    listed = tmp_path / "listed"
    listed.mkdir()
    messages = []
    for name in patches:
        message = (sent / name).read_bytes().split(b"\n", 1)[1]  # without format-patch's From
        (listed / f"{name}.eml").write_bytes(message)
        messages.append(message)
    cover = next(sent.glob("0000-*")).read_bytes().split(b"\n", 1)[1]
    box = tmp_path / "thread.mbox"  # as a thread may come: replies first, a blank line after each
    box.write_bytes(b"".join(MBOX_FROM + m + b"\n" for m in [messages[1], cover, messages[0]]))
    from_mbox = series.read(box, tmp_path / "work-mbox")
    expected = sha256sum(listed, [f"{n}.eml" for n in patches])
    assert kcidb.series_facts(from_mbox)["patchset_hash"] == expected
    doc = kcidb.document([series_report(tmp_path)],
                         dataclasses.replace(run(), series=kcidb.series_facts(from_mbox)),
                         NAMES)
    kcidb.validate(doc)
    assert doc["checkouts"][0]["patchset_hash"] == expected


def test_patchset_files_are_where_the_series_came_from_never_a_local_path(
        sent: Path, tmp_path: Path) -> None:
    """Fetched from a list archive: each patch as the archive serves it raw; from Patchwork:
    the series' mbox; from the tester's files: no patchset_files (a local path is no URL),
    the patchset_hash still there."""
    from harness.mail import series

    mailed = series.read(sent, tmp_path)
    assert mailed.cover is not None
    ids = [p.message_id.strip("<>") for p in mailed.patches]
    archive = "https://lore.kernel.org/all"
    thread = dataclasses.replace(
        mailed, origin=f"{archive}/{mailed.cover.message_id.strip('<>')}/t.mbox.gz")
    patchwork = dataclasses.replace(
        mailed, origin="https://patchwork.kernel.org/series/7/mbox/")
    found = {}
    for name, s in (("files", mailed), ("lore", thread), ("patchwork", patchwork)):
        doc = kcidb.document([series_report(tmp_path)],
                             dataclasses.replace(run(), series=kcidb.series_facts(s)), NAMES)
        kcidb.validate(doc)
        (checkout,) = doc["checkouts"]
        assert checkout["patchset_hash"] == mailed.patchset_hash()
        found[name] = checkout.get("patchset_files")
    assert found["files"] is None
    assert found["lore"] == [{"name": f"{n:04d}.patch", "url": f"{archive}/{i}/raw"}
                             for n, i in enumerate(ids, 1)]
    assert found["patchwork"] == [{"name": "series-7.mbox",
                                   "url": "https://patchwork.kernel.org/series/7/mbox/"}]


# -- what bisecting a failed series found: issues and incidents -------------------------------

PATCH = PatchRef(2, "2/3", "kbuild: build extra.o", "Jörg Rödel <joro@example.org>",
                 "<2.1796029318.git.joro@example.org>")
SERIES: dict[str, Any] = {"name": "Return 1", "patchset_hash": "a" * 64, "patch_files": []}
CHECKED = [*NAMES, "cfi"]


def failing(tmp: Path, arch: str = "x86_64") -> KernelReport:
    rep = series_report(tmp) if arch == "x86_64" else report(tmp, arch)
    rep.results = [CheckResult("proc_version", True, "clang and LLD", "Linux version 6.1"),
                   CheckResult("cfi", False, "CFI not enforced", "[ 1.0] lkdtm: survived")]
    return rep


def finding(outcome: Outcome, arch: str = "x86_64", patch: PatchRef | None = PATCH,
            checks: tuple[str, ...] = ("cfi",)) -> dict[str, object]:
    steps = [Step(3, "bad", ["cfi"], "cfi: CFI not enforced", "", None, "cached", 1.4),
             Step(0, "good", [], "passed cfi", "", 250.4, "nothing", 1.3)]
    return Finding(arch, f"{arch}-thin" + ("" if arch == "x86_64" else "-prebuilt"), [],
                   list(checks), outcome, f"{outcome} sentence", base="v6.1",
                   base_commit="c" * 40, patch=patch if outcome is Outcome.CULPRIT else None,
                   steps=steps, seconds=300.0, reproduce="ltoboot tested-by …").as_dict()


def bisected(tmp: Path, *findings: dict[str, object], run_id: str = "run1",
             reports: list[KernelReport] | None = None) -> dict[str, Any]:
    doc = kcidb.document(reports or [failing(tmp), failing(tmp, "arm64")],
                         dataclasses.replace(run(run_id), series=SERIES,
                                             findings=list(findings)), CHECKED)
    kcidb.validate(doc)
    return doc


def test_a_culprit_is_an_issue_linked_to_the_tests_it_fails(tmp_path: Path) -> None:
    doc = bisected(tmp_path, finding(Outcome.CULPRIT))
    (issue,) = doc["issues"]
    assert issue["origin"] == "ltoboot" and issue["version"] == 1
    assert issue["culprit"] == {"code": True} and issue["comment"] == "culprit sentence"
    assert issue["misc"]["patch"] == {"number": "2/3", "subject": "kbuild: build extra.o",
                                      "author": "Jörg Rödel <joro@example.org>",
                                      "message_id": PATCH.message_id}
    assert issue["misc"]["base"] == "v6.1" and issue["misc"]["base_commit"] == "c" * 40
    assert [(s["kernel"], s["verdict"]) for s in issue["misc"]["steps"]] == [
        ("head", "bad"), ("base", "good")]
    x86 = {b["id"] for b in doc["builds"] if b["architecture"] == "x86_64"}
    cfi = [t for t in doc["tests"] if t["path"] == "ltoboot.cfi"]
    linked = [t["id"] for t in cfi if t["build_id"] in x86]
    (incident,) = doc["incidents"]
    assert incident["test_id"] == linked[0] and incident["present"] is True
    assert incident["issue_id"] == issue["id"] and incident["issue_version"] == 1
    assert [t["misc"].get("bisect") for t in cfi] == [
        {"outcome": "culprit", "said": "culprit sentence"}, None]  # arm64's is not this


def test_an_issue_id_is_the_series_patch_checks_and_arch(tmp_path: Path) -> None:
    """The same finding in another run is the same issue (KCIDB merges them); another patch,
    check, arch or series is another."""
    def issue_id(f: dict[str, object], series: dict[str, Any] = SERIES,
                 run_id: str = "run1") -> str:
        doc = kcidb.document([failing(tmp_path), failing(tmp_path, "arm64")],
                             dataclasses.replace(run(run_id), series=series, findings=[f]),
                             CHECKED)
        return str(doc["issues"][0]["id"])

    first = issue_id(finding(Outcome.CULPRIT))
    assert issue_id(finding(Outcome.CULPRIT), run_id="run2") == first
    other = dataclasses.replace(PATCH, index=1, number="1/3",
                                message_id="<1.1796029318.git.joro@example.org>")
    assert len({first, issue_id(finding(Outcome.CULPRIT, patch=other)),
                issue_id(finding(Outcome.CULPRIT, checks=("cfi", "vdso"))),
                issue_id(finding(Outcome.CULPRIT, "arm64")),
                issue_id(finding(Outcome.CULPRIT), {**SERIES, "patchset_hash": "b" * 64})}) == 5


def test_a_base_that_fails_too_is_an_issue_of_the_base(tmp_path: Path) -> None:
    doc = bisected(tmp_path, finding(Outcome.BASE, "arm64"))
    (issue,) = doc["issues"]
    assert issue["culprit"] == {"code": True} and issue["comment"] == "base sentence"
    assert issue["misc"]["base_fails_too"] is True and "patch" not in issue["misc"]
    arm64 = {b["id"] for b in doc["builds"] if b["architecture"] == "arm64"}
    (incident,) = doc["incidents"]
    linked = next(t for t in doc["tests"] if t["id"] == incident["test_id"])
    assert linked["build_id"] in arm64 and linked["path"] == "ltoboot.cfi"


@pytest.mark.parametrize("outcome", [Outcome.NOT_REPRODUCED, Outcome.UNRESOLVED])
def test_a_finding_that_names_nothing_is_said_in_the_failed_tests_misc(
        outcome: Outcome, tmp_path: Path) -> None:
    doc = bisected(tmp_path, finding(outcome))
    assert "issues" not in doc and "incidents" not in doc
    said = [t["misc"]["bisect"] for t in doc["tests"] if "bisect" in t.get("misc", {})]
    assert said == [{"outcome": str(outcome), "said": f"{outcome} sentence"}]


def test_a_boot_failure_links_the_boot_test(tmp_path: Path) -> None:
    rep = series_report(tmp_path).fail(Stage.BOOT, KernelFailure(
        "panic", "Kernel panic - not syncing", "[ 0.9] Kernel panic - not syncing"))
    doc = bisected(tmp_path, finding(Outcome.CULPRIT, checks=("boot",)), reports=[rep])
    (incident,) = doc["incidents"]
    assert next(t for t in doc["tests"] if t["id"] == incident["test_id"])["path"] == "boot"


def test_a_head_that_does_not_build_is_said_in_its_build(tmp_path: Path) -> None:
    rep = KernelReport(label="x86_64-thin", spec=BuildSpec(arch="x86_64")).fail(
        Stage.BUILD, "make (all) failed (exit 2)")
    doc = bisected(tmp_path, finding(Outcome.NOT_BISECTED, checks=()), reports=[rep])
    assert "issues" not in doc
    assert doc["builds"][0]["misc"]["bisect"] == {"outcome": "not-bisected",
                                                  "said": "not-bisected sentence"}


def test_the_findings_reach_the_document_through_the_context(tmp_path: Path) -> None:
    from harness.reports import documents

    ctx = documents.Context(["cfi"], datetime.now(UTC), series=SERIES,
                            findings=[finding(Outcome.CULPRIT)])
    out = tmp_path / "kcidb.json"
    documents.write_all({"kcidb": str(out)}, [failing(tmp_path)], ctx)
    written = json.loads(out.read_text())
    assert [i["misc"]["patch"]["number"] for i in written["issues"]] == ["2/3"]
    assert len(written["incidents"]) == 1
    assert documents.Context(["cfi"], datetime.now(UTC)).findings == []  # callers as before


def test_config_name_lists_every_fragment_the_build_took() -> None:
    """On tinyconfig an arch may take our fragment for that base too (x86_64: LZ4); a
    tester's base does not, and the tester's own fragments come last."""
    tiny = BuildSpec(arch="x86_64", fragments=("mine.config",))
    assert kcidb._config_name(None, tiny) == \
        "tinyconfig+x86_64.config+x86_64-tinyconfig.config+mine.config"
    assert kcidb._config_name(None, BuildSpec(arch="x86_64", config="defconfig")) == \
        "defconfig+x86_64.config"
    assert kcidb._config_name(None, BuildSpec(arch="arm64")) == "tinyconfig+arm64.config"
    # a kernel built elsewhere did not take it; nor did a base file that is named tinyconfig
    assert "x86_64-tinyconfig" not in kcidb._config_name(
        None, BuildSpec(arch="x86_64", prebuilt="/k/bzImage"))
    assert "x86_64-tinyconfig" not in kcidb._config_name(
        None, BuildSpec(arch="x86_64", config="/mine/tinyconfig"))
