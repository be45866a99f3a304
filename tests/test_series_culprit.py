"""`tested-by --series` names the patch that breaks the kernel, on real kernels: a 5-patch
series on Debian's 6.1 whose 3/5 compiles x86_64's vDSO with the kernel's LTO flags (the
`vdso` check fails on x86_64; arm64's vDSO is not touched and passes), the others harmless.
The base is checked, the patches bisected from the nearest cached builds, patch 3/5 named with
its check and evidence, and the report to it is threaded to it, without a trailer: b4 takes
nothing from it. The same breakage in the base with a harmless series on top blames nothing.
Opt-in (about 7 incremental builds): LTOBOOT_SERIES_CULPRIT=1."""

from __future__ import annotations

import email
import email.policy
import email.utils
import hashlib
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.base import cache
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.kernel import patched
from harness.kernel.variants import _copy_tree
from harness.mail import series
from tests.test_tested_by_series import _commit, _git, _state, series_repo  # noqa: F401
from tests.unit.test_mail_corpus import b4_trailers

pytestmark = [pytest.mark.boot, pytest.mark.ltoboot_group("series"),
              pytest.mark.opt_in("LTOBOOT_SERIES_CULPRIT",
                                 "(a failing 5-patch series bisected on real kernels: about "
                                 "7 incremental builds)")]

SERIES = "ltoboot-culprit"  # under the repository's .git: the 5 patches
ON_BROKEN = "ltoboot-culprit-on-broken"  # 2 harmless patches onto a base with the breakage
VDSO = ("arch/x86/entry/vdso/Makefile", "KBUILD_CFLAGS := $(filter-out $(CC_FLAGS_LTO) ",
        "KBUILD_CFLAGS := $(filter-out ")
CULPRIT_TITLE = "x86/vdso: build the vDSO with the kernel's flags"
HELLO = ("init/main.c", "\tint ret;\n\n\t/*\n\t * Wait until kthreadd is all set-up.",
         "\tint ret;\n\n\tpr_notice(\"ltoboot: the culprit series says hello\\n\");\n\n\t/*\n"
         "\t * Wait until kthreadd is all set-up.")


def _harmless(repo: Path, n: int) -> None:
    _commit(repo, f"README: a harmless line {n}", "README", "Linux kernel\n",
            f"Linux kernel\n(harmless {n})\n")


def _make_repo(tmp: Path, base: Path) -> None:
    """The series repository, linked (git writes a file anew, never through a link), with
    the 5 patches as `git format-patch --thread` files (no cover letter) and the 2 patches
    onto a base that already has the breakage."""
    _copy_tree(base, tmp)
    _git(tmp, "checkout", "-q", "-b", "culprit", "v6.1-debian")
    _harmless(tmp, 1)
    _commit(tmp, "init: say hello", *HELLO)
    _commit(tmp, CULPRIT_TITLE, *VDSO)
    _commit(tmp, "Documentation: a harmless note", "Documentation/Changes",
            "Intro\n", "Intro\n(a harmless note)\n")
    _harmless(tmp, 2)
    _git(tmp, "format-patch", "-q", "--thread", "-o", str(tmp / ".git" / SERIES),
         "--to", "Maintainer <maint@example.org>", "--cc", "x86@example.org",
         "v6.1-debian..culprit")
    _git(tmp, "checkout", "-q", "-b", "broken-base", "v6.1-debian")
    _commit(tmp, CULPRIT_TITLE, *VDSO)
    _git(tmp, "tag", "broken-base-tag")
    _harmless(tmp, 3)
    _commit(tmp, "init: say hello", *HELLO)
    _git(tmp, "format-patch", "-q", "--thread", "-o", str(tmp / ".git" / ON_BROKEN),
         "broken-base-tag..broken-base")
    _git(tmp, "checkout", "-q", "master")


@pytest.fixture(scope="module")
def culprit_repo(series_repo: Path) -> Path:  # noqa: F811
    recipe = hashlib.sha256(inspect.getsource(_make_repo).encode()).hexdigest()[:12]
    entry = cache.cache_root() / "test-repos" / f"culprit-{series_repo.name}-{recipe}"
    return cache.publish(entry, lambda tmp: _make_repo(tmp, series_repo))


def _tested_by(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = subprocess.run([sys.executable, "-m", "harness.faces.cli", "tested-by", "--name",
                        "Tess Tester", "--email", "tess@example.org", "--format", "json",
                        *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return r, json.loads(r.stdout) if r.stdout.startswith("{") else {}


def test_the_patch_that_breaks_a_check_is_named_on_its_arch_and_answered(
        culprit_repo: Path, tmp_path: Path, kernels: Kernels,
        request: pytest.FixtureRequest) -> None:
    before = _state(culprit_repo)
    sent = culprit_repo / ".git" / SERIES
    reply_file, doc = tmp_path / "report.eml", tmp_path / "kcidb.json"
    r, facts = _tested_by("--series", str(sent), "--kernel-src", str(culprit_repo), "--base",
                          "v6.1-debian", "--reply", str(reply_file), "--kcidb", str(doc),
                          "--accel", request.config.getoption("accel"))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert _state(culprit_repo) == before
    passed = {a["arch"]: a["passed"] for a in facts["arches"]}
    assert passed == {"x86_64": False, "arm64": True}, r.stderr[-3000:]
    (found,) = facts["findings"]  # arm64 passed: nothing to bisect there
    assert found["arch"] == "x86_64" and found["outcome"] == "culprit", found["said"]
    assert found["patch"]["number"] == "3/5" and found["patch"]["subject"] == CULPRIT_TITLE
    assert found["checks"] == ["vdso"] and found["summary"].startswith("vdso: ")
    assert found["excerpt"] and found["base_failed"] == []
    steps = {s["k"]: s for s in found["steps"]}
    assert steps[2]["verdict"] == "good" and steps[3]["verdict"] == "bad", steps
    assert steps[0]["verdict"] == "good" and steps[3]["failed"] == ["vdso"]
    assert set(steps) <= {0, 2, 3, 5}  # the head again, the base, two steps
    for s in found["steps"]:
        assert s["built_from"] != "nothing", s  # every step from a cached build
    # the steps' trees: the base's files, linked; no build directory linked from another
    applied = series.apply(series.read(sent, tmp_path), culprit_repo, "v6.1-debian")
    base = patched.step_tree(applied, 0)
    for k in (2, 3):
        tree = patched.step_tree(applied, k)
        assert (tree / "Makefile").stat().st_ino == (base / "Makefile").stat().st_ino
        for built in tree.glob(".ltoboot-*/vmlinux"):
            assert built.stat().st_nlink == 1, built
    assert "--series" in found["reproduce"] and "--arch=x86_64" in found["reproduce"]
    # the report: to the culprit, threaded under it, no trailer, and b4 agrees
    patch3 = email.message_from_bytes(sorted(sent.glob("0003-*.patch"))[0].read_bytes(),
                                      policy=email.policy.default)
    msg = email.message_from_string(reply_file.read_text(), policy=email.policy.default)
    assert str(msg["In-Reply-To"]).strip() == patch3["Message-ID"]  # folded: a long id
    assert email.utils.parseaddr(str(msg["To"]))[1] == "sam@example.org"
    body = msg.get_content()
    assert "\nTested-by:" not in body and found["excerpt"].splitlines()[0].strip() in body
    assert found["reproduce"] in body.replace("\n  ", " ") or "ltoboot tested-by" in body
    thread = b"".join(p.read_bytes() for p in sorted(sent.glob("*.patch")))
    assert b4_trailers(thread, reply_file.read_text(), tmp_path) == [""] * 5
    kcidb = json.loads(doc.read_text())
    assert any(i.get("culprit", {}).get("code") for i in kcidb.get("issues", [])), kcidb
    assert kcidb.get("incidents")
    build = sum(s["build_seconds"] or 0 for s in found["steps"])
    full = kernels.get(arch="x86_64").build_seconds
    print(f"\nseries bisect: {len(found['steps'])} steps in {found['seconds']:.0f}s "
          f"(builds {build:.0f}s); a build from nothing of the default kernel: {full}s; "
          + ", ".join(f"k={s['k']} {s['verdict']} build {s['build_seconds']}s "
                      f"boot {s['boot_seconds']}s" for s in found["steps"]))


def test_a_base_that_fails_the_same_way_blames_no_patch(
        culprit_repo: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    reply_file = tmp_path / "report.eml"
    r, facts = _tested_by("--series", str(culprit_repo / ".git" / ON_BROKEN), "--kernel-src",
                          str(culprit_repo), "--base", "broken-base-tag", "--arch", "x86_64",
                          "--reply", str(reply_file), "--accel",
                          request.config.getoption("accel"))
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    (found,) = facts["findings"]
    assert found["outcome"] == "base" and found["patch"] is None
    assert found["said"] == "the base already fails vdso on x86_64: not this series"
    assert [s["k"] for s in found["steps"]] == [2, 0]  # the head again, then the base
    assert not reply_file.exists() and "report" not in facts
    assert "no report to send" in r.stderr
