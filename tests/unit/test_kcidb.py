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
    assert checkout["tree_name"] == "linux" and checkout["git_commit_hash"] == head
    assert checkout["git_commit_name"] == f"v6.1-1-g{head[:7]}"
    assert checkout["git_repository_url"] == "https://git.example.org/linux.git"
    assert checkout["misc"] == {"identity": src.identity, "version": "6.1.0",
                                "local_changes": found.local_changes}
    assert checkout["comment"] == src.description


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
