"""`ltoboot tested-by --series` end to end: a series made with `git format-patch
--cover-letter` on a real kernel repository, applied, built on the tester's own config, booted,
checked and answered with a reply mail; a series that does not apply; the tester's tree
untouched either way."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.base import cache
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel import kconfig, nearest, source
from harness.kernel.build import build_kernel
from harness.kernel.model import BuildSpec, Kernel
from harness.kernel.variants import _copy_tree, replace_in_copy
from harness.mail import series
from tests import same_kernel
from tests.markers import SERIES_PROOF

pytestmark = [pytest.mark.boot, pytest.mark.ltoboot_group("series")]

DEBIAN_BLOCK = "# Debian packaging: ignore everything at the top level"
GREETING = "ltoboot: the tested series is applied"
GREETING_V2 = "ltoboot: v2 of the tested series is applied"
ENV = {"GIT_AUTHOR_NAME": "Sam Sender", "GIT_AUTHOR_EMAIL": "sam@example.org",
       "GIT_COMMITTER_NAME": "Sam Sender", "GIT_COMMITTER_EMAIL": "sam@example.org",
       "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
       "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
       # a whole kernel tree is 78,000 loose objects: git's automatic gc would repack them in a
       # process of its own that outlives the test (minutes of CPU in a cold run)
       "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "gc.auto", "GIT_CONFIG_VALUE_0": "0"}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env={**os.environ, **ENV}).stdout.strip()


def _commit(repo: Path, message: str, path: str, old: str, new: str) -> None:
    replace_in_copy(repo / path, old, new, count=1)  # a new inode: the cached tree stays
    _git(repo, "commit", "-q", "-a", "-m", message)


def _make_repo(repo: Path, base: Kernel) -> None:
    """A kernel repository (the default tree, hard-linked), the series sent from a branch of
    it as `git format-patch --cover-letter --thread` files in repo/.git/ltoboot-series, its
    v2 (one C file, one Makefile line) in repo/.git/ltoboot-series-v2, and a branch
    `conflict` onto which patch 2/2 does not apply."""
    assert base.source_tree is not None
    _copy_tree(base.source_tree, repo)
    gitignore = (repo / ".gitignore").read_text()
    assert DEBIAN_BLOCK in gitignore  # else nothing at the top level would be committed
    replace_in_copy(repo / ".gitignore", gitignore[gitignore.index(DEBIAN_BLOCK):], "")
    _git(repo, "init", "-q", "-b", "master")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "Linux 6.1 from Debian's linux-source-6.1")
    _git(repo, "tag", "v6.1-debian")
    _git(repo, "checkout", "-q", "-b", "series")
    _commit(repo, "init: say that the series is applied", "init/main.c",
            "\tint ret;\n\n\t/*\n\t * Wait until kthreadd is all set-up.",
            f"\tint ret;\n\n\tpr_notice(\"{GREETING}\\n\");\n\n\t/*\n"
            "\t * Wait until kthreadd is all set-up.")
    _commit(repo, "docs: name the series in the README", "README", "Linux kernel\n",
            "Linux kernel (with the tested series)\n")
    out = repo / ".git" / "ltoboot-series"
    _git(repo, "format-patch", "-q", "--cover-letter", "--thread", "-o", str(out),
         "--to", "Maintainer <maint@example.org>", "--cc", "linux-kbuild@example.org",
         "v6.1-debian..series")
    cover = next(out.glob("0000-*"))
    cover.write_text(cover.read_text()
                     .replace("*** SUBJECT HERE ***", "Greet from init")
                     .replace("*** BLURB HERE ***", "This series makes init greet the tester.\n"
                              "It also names itself in the README."))
    _git(repo, "checkout", "-q", "-b", "series-v2", "v6.1-debian")
    _commit(repo, "init: say that the series is applied", "init/main.c",
            "\tint ret;\n\n\t/*\n\t * Wait until kthreadd is all set-up.",
            f"\tint ret;\n\n\tpr_notice(\"{GREETING_V2}\\n\");\n\n\t/*\n"
            "\t * Wait until kthreadd is all set-up.")
    _commit(repo, "init: build main.o knowing the series", "init/Makefile",
            "\nobj-y                          := main.o",
            "\nCFLAGS_main.o := -DLTOBOOT_SERIES=2\nobj-y                          := main.o")
    _git(repo, "format-patch", "-q", "-v2", "--cover-letter", "--thread", "-o",
         str(repo / ".git" / "ltoboot-series-v2"), "v6.1-debian..series-v2")
    _git(repo, "checkout", "-q", "-b", "conflict", "v6.1-debian")
    _commit(repo, "docs: someone else's README title", "README", "Linux kernel\n",
            "Linux kernel (elsewhere)\n")
    _git(repo, "checkout", "-q", "master")


@pytest.fixture(scope="module")
def series_repo(kernels: Kernels) -> Path:
    base = kernels.get(arch="x86_64")
    recipe = hashlib.sha256(inspect.getsource(_make_repo).encode()).hexdigest()[:12]
    entry = cache.cache_root() / "test-repos" / f"series-{base.key}-{recipe}"
    return cache.publish(entry, lambda tmp: _make_repo(tmp, base))


@pytest.fixture(scope="module")
def tester_config(kernels: Kernels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tester's own config: ours, without LKDTM (ltoboot adds it back) and with a
    LOCALVERSION that shows in /proc/version."""
    mine = kconfig.parse(kernels.get(arch="x86_64").config.read_text())
    mine["LKDTM"] = "n"
    mine["LOCALVERSION"] = '"-tester"'
    config = tmp_path_factory.mktemp("tester") / "tester.config"
    config.write_text(kconfig.render(mine))
    return config


def _state(repo: Path) -> dict[str, str]:
    """What a tester would not want changed: HEAD, branch, index, work tree, worktrees."""
    return {"head": _git(repo, "rev-parse", "HEAD"),
            "branch": _git(repo, "symbolic-ref", "HEAD"),
            "status": _git(repo, "status", "--porcelain"),
            "index": _git(repo, "diff", "--cached", "--stat"),
            "worktrees": _git(repo, "worktree", "list", "--porcelain"),
            "readme": (repo / "README").read_text()[:40]}


def _ltoboot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.faces.cli", *args], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def test_series_is_applied_built_on_the_testers_config_booted_and_answered(
        series_repo: Path, tester_config: Path, tmp_path: Path,
        request: pytest.FixtureRequest) -> None:
    config = tester_config
    before = _state(series_repo)
    reply_file = tmp_path / "reply.eml"
    r = _ltoboot("tested-by", "--series", str(series_repo / ".git" / "ltoboot-series"),
                 "--kernel-src", str(series_repo), "--base", "v6.1-debian", "--arch", "x86_64",
                 "--config", str(config), "--reply", str(reply_file), "--name", "Tess Tester",
                 "--email", "tess@example.org", "--accel", request.config.getoption("accel"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert _state(series_repo) == before
    assert "series \"Greet from init\": 2 patches, ordered by b4" in r.stderr
    assert "config: tester.config, with 1 option added by ltoboot: CONFIG_LKDTM=y" \
        in r.stdout, r.stdout
    msg = email.message_from_string(reply_file.read_text(), policy=email.policy.default)
    cover = next((series_repo / ".git" / "ltoboot-series").glob("0000-*"))
    sent = email.message_from_string(cover.read_text(), policy=email.policy.default)
    assert msg["Subject"] == "Re: [PATCH 0/2] Greet from init"
    assert msg["In-Reply-To"] == sent["Message-ID"] and msg["References"] == sent["Message-ID"]
    assert email.utils.parseaddr(msg["To"])[1] == "sam@example.org"
    assert [a for _, a in email.utils.getaddresses([msg["Cc"]])] == [
        "maint@example.org", "linux-kbuild@example.org"]
    body = msg.get_content()
    assert "> This series makes init greet the tester.\n" in body
    assert "\nTested-by: Tess Tester <tess@example.org>\n" in body
    release = source.makefile_version(series_repo)  # the base's, as the kernel reports it
    assert f"\n# cat /proc/version\nLinux version {release}-tester " in body
    assert "clang version" in body and "LLD" in body
    assert "# zgrep 'LTO[_=]' /proc/config.gz\nCONFIG_LTO=y\n" in body
    assert "\n# CONFIG_LTO_NONE is not set\n" in body and "\nCONFIG_LTO_CLANG_THIN=y\n" in body
    assert "x86_64: " in body and "checks passed" in body and "ThinLTO" in body
    assert msg.get_content() in r.stdout  # printed as well as written
    doc = tmp_path / "kcidb.json"
    facts = json.loads(_ltoboot(
        "tested-by", "--series", str(series_repo / ".git" / "ltoboot-series"),
        "--kernel-src", str(series_repo), "--base", "v6.1-debian", "--arch", "x86_64",
        "--config", str(config), "--name", "T", "--email", "t@example.org", "--format", "json",
        "--check", "proc_version", "--kcidb", str(doc)).stdout)  # the cached kernel
    console = Path(facts["arches"][0]["console_log"]).read_text(errors="replace")
    assert GREETING in console  # the series really is in the kernel that booted
    (checkout,) = json.loads(doc.read_text())["checkouts"]  # KCIDB: the series on its base
    patches = sorted((series_repo / ".git" / "ltoboot-series").glob("000[1-9]-*.patch"))
    assert checkout["patchset_hash"] == hashlib.sha256(b"".join(  # sha256sum *.patch | …
        hashlib.sha256(p.read_bytes()).hexdigest().encode() + b"\n" for p in patches)).hexdigest()
    assert checkout["message_id"] == sent["Message-ID"]
    assert checkout["comment"] == "[PATCH 0/2] Greet from init"
    assert checkout["git_commit_hash"] == _git(series_repo, "rev-parse", "v6.1-debian")
    assert "patchset_files" not in checkout  # the tester's own files: a local path is no URL


def test_series_that_does_not_apply_names_the_patch_and_leaves_nothing(
        series_repo: Path, tmp_path: Path) -> None:
    before = _state(series_repo)
    entries = set((cache.cache_root() / "series").glob("*"))
    r = _ltoboot("tested-by", "--series", str(series_repo / ".git" / "ltoboot-series"),
                 "--kernel-src", str(series_repo), "--base", "conflict", "--arch", "x86_64",
                 "--reply", str(tmp_path / "reply.eml"), "--name", "T", "--email", "t@e.org")
    assert r.returncode == 2, r.stdout + r.stderr
    error = [line for line in r.stderr.splitlines() if line.startswith("ltoboot: error:")]
    assert len(error) == 1 and "patch 2/2 \"docs: name the series in the README\" does not " \
        "apply: README" in error[0], r.stderr
    assert not (tmp_path / "reply.eml").exists()
    assert _state(series_repo) == before
    left = {p for p in set((cache.cache_root() / "series").glob("*")) - entries
            if not p.name.endswith((".lock", ".failed.json", ".use", ".size"))}
    # no half-applied tree, no temporary: at most the base's whole checkout, which the next
    # series onto that commit is linked to
    assert all(p.name.startswith("base-") and (p / "series.json").is_file() for p in left), left


def _series_kernel(repo: Path, sent: str, config: Path, work: Path) -> Kernel:
    applied = series.apply(series.read(repo / ".git" / sent, work), repo, "v6.1-debian")
    return build_kernel(BuildSpec(arch="x86_64", kernel_src=str(applied.tree),
                                  config=str(config)))


def _full_facts(repo: Path, config: Path, work: Path, monkeypatch: pytest.MonkeyPatch
                ) -> tuple[Kernel, dict[str, Any]]:
    """v2 built from nothing, and its facts: a record in the cache made once per machine (the
    kernel's own entry then holds v2 as built from v1, which later runs find cached)."""
    monkeypatch.setenv(nearest.ENV, "0")
    full = _series_kernel(repo, "ltoboot-series-v2", config, work)
    monkeypatch.delenv(nearest.ENV)
    record = cache.cache_root() / "test-repos" / f"series-v2-full-{full.key}.json"
    if not record.exists():
        if "incremental_from" in full.extra:  # the record was removed, the kernel was not
            _forget(full)
            monkeypatch.setenv(nearest.ENV, "0")
            full = _series_kernel(repo, "ltoboot-series-v2", config, work)
            monkeypatch.delenv(nearest.ENV)
        assert "incremental_from" not in full.extra
        facts = {"facts": list(same_kernel.facts(full, GREETING_V2)),
                 "seconds": full.build_seconds, "steps": full.steps,
                 "ccache": full.extra.get("ccache", "-")}
        cache.write_atomic(record, json.dumps(facts))
    if "incremental_from" not in full.extra:
        _forget(full)  # the build to compare with it starts from v1's
    return full, json.loads(record.read_text())


def _forget(kernel: Kernel) -> None:
    assert kernel.build_dir is not None
    cache.release_all()  # this process's holds; nothing else uses the series' builds
    shutil.rmtree(kernel.build_dir)


def test_v2_starts_from_v1s_build(series_repo: Path, tester_config: Path, tmp_path: Path,
                                  kernels: Kernels) -> None:
    """v2 of the series is built from v1's build (in a fresh cache v1 itself started from the
    default kernel's: the tester's config is ours but two options, the trees were compared
    file by file): a quarter of a full build's steps at most, booted, every check passing or
    skipping, v2's change on the console. That it is the kernel a build from nothing gives is
    the opt-in test below (one more full build)."""
    v1 = _series_kernel(series_repo, "ltoboot-series", tester_config, tmp_path)
    assert v1.build_dir is not None
    v2 = _series_kernel(series_repo, "ltoboot-series-v2", tester_config, tmp_path)
    # from v1's build in a fresh cache; from whichever series build is nearer in a cache that
    # holds one (an earlier recipe's v2): a series' build either way
    assert " patches of " in v2.extra.get("incremental_from", ""), v2.extra
    _, _, _, verdicts, said = same_kernel.facts(v2, GREETING_V2)
    assert said and verdicts and all(v != "FAIL" for _, v in verdicts), verdicts
    full = kernels.get(arch="x86_64")  # a build from nothing of nearly the same tree and config
    if "incremental_from" not in full.extra:
        assert v2.steps * 4 <= full.steps, (v2.steps, full.steps)
    print(f"\nseries v2 after v1: {v2.build_seconds:.0f}s ({v2.steps} steps)")


@SERIES_PROOF
def test_v2_from_v1_is_the_kernel_a_full_build_gives(
        series_repo: Path, tester_config: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """v2 from v1's build equals v2 from nothing: most of v2's objects come through the chain
    default build -> v1 -> v2, so it is held to a build from nothing."""
    v1 = _series_kernel(series_repo, "ltoboot-series", tester_config, tmp_path)
    assert v1.build_dir is not None
    full, expected = _full_facts(series_repo, tester_config, tmp_path, monkeypatch)
    inc = _series_kernel(series_repo, "ltoboot-series-v2", tester_config, tmp_path)
    assert inc.build_dir == full.build_dir and inc.key == full.key
    assert "Greet from init" in inc.extra.get("incremental_from", ""), inc.extra
    # as the record has it: lists, not tuples
    got = json.loads(json.dumps(same_kernel.facts(inc, GREETING_V2)))
    assert got[-1] and got[3] and all(v != "FAIL" for _, v in got[3])
    assert got == expected["facts"]
    print(f"\nseries v2: from nothing {expected['seconds']:.0f}s ({expected['steps']} steps, "
          f"ccache {expected['ccache']}), after v1 {inc.build_seconds:.0f}s ({inc.steps} "
          "steps)")
    assert inc.steps * 4 <= expected["steps"], (inc.steps, expected["steps"])
