"""Results in KernelCI's own format: a KCIDB v5.3 document (checkouts, builds, tests), checked
with KernelCI's schema package (kcidb-io) before it is written.

Origin `ltoboot`. Ids say what they name and stay the same for the same thing: a checkout is
its source's identity (the tarball's sha256, a git commit and its local changes, a series
applied onto a base), a build is the kernel's cache key, a test is the build, the run and
the test's path (`boot`, `ltoboot.<check>`): the same kernel tested twice is two runs of one
build. A check that could not run because the kernel failed first is MISS; a failure of the
machine or the lab (LAVA could not fetch a file) is ERROR, never FAIL.

A document is made of what the run carries (the kernel's Checkout and key, from its build's
plan): nothing here asks git, the source tree or the build planner again after the run.

When a series failed and bisecting its patches named a culprit (or found that the base fails
too), the document carries it as an issue, and incidents link the issue to the tests that
failed on that arch's kernel; any other finding is said in those tests' misc.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.base import cache
from harness.base.arch import get_arch
from harness.checks import Verdict
from harness.kernel.model import BuildSpec, Checkout, Kernel
from harness.reports.results import KernelReport, Stage
from harness.reports.tested_by import culprit_of, items, patch_count, step_name

if TYPE_CHECKING:  # the series' mail parsing is for tested-by --series only
    from harness.mail.series import Series

ORIGIN = "ltoboot"
MISS = "MISS"  # KCIDB's status of a test that did not run: no result, so no Verdict
EXCERPT = 16384  # KCIDB's log_excerpt limit, in characters
VERSION = {"major": 5, "minor": 3}


class InvalidDocument(Exception):
    """A document KernelCI's schema refuses: a bug in ltoboot (exit 3), never a file."""


@dataclass
class Source:
    """A checkout: what was built, as KCIDB says it."""

    identity: str  # stable: the same source gives the same id
    fields: dict[str, Any] = field(default_factory=dict)
    misc: dict[str, Any] = field(default_factory=dict)


@dataclass
class Run:
    """One command's run: its id (tests of the same build in two runs stay apart), when it
    started, the artifact URL its logs are published under (if any), the series tested."""

    id: str
    started: datetime
    artifact_url: str | None = None
    series: Mapping[str, Any] | None = None
    errors: dict[str, str] = field(default_factory=dict)  # kernel label -> infrastructure error
    # what bisecting a failed series found, per arch (harness/runs/culprit.py's Finding, as
    # its as_dict() gives it)
    findings: list[dict[str, Any]] = field(default_factory=list)


def series_facts(mailed: Series) -> dict[str, Any]:
    """What a checkout says of a mailed series: where others download its patches (the
    list archive or Patchwork it was fetched from; nothing for the tester's own files: a
    local path is no URL), KCIDB's patchset_hash of its patches, its cover letter's subject
    and Message-ID."""
    return {"name": mailed.name, "patchset_hash": mailed.patchset_hash(),
            "patch_files": mailed.patch_files(),
            "cover_subject": mailed.cover.subject if mailed.cover else "",
            "cover_message_id": mailed.cover.message_id if mailed.cover else ""}


def _id(*parts: str) -> str:
    return f"{ORIGIN}:" + ":".join(parts)


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def _clean(value: Any) -> Any:
    """No nulls anywhere (KCIDB forbids them), no empty values (but patchset_hash's: no
    patches); nested mappings and lists cleaned too."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()
                if v is not None and (v not in ({}, "") or k == "patchset_hash")}
    if isinstance(value, list):
        return [_clean(v) for v in value if v is not None]
    if isinstance(value, str):
        return value.replace("\0", "")
    return value


def excerpt(text: str) -> str:
    """The end of a log, as much as KCIDB takes: where a failure shows."""
    return text.replace("\0", "")[-EXCERPT:]


def checkout_of(rep: KernelReport) -> Checkout:
    """Where a report's kernel came from, as its build's plan found it (a kernel that did not
    build: as the plan of its failed build did)."""
    k, spec = rep.kernel, rep.spec
    if k is not None and k.checkout.identity:
        return k.checkout
    if k is None and rep.checkout is not None:
        return rep.checkout
    origin = (k.extra.get("prebuilt") if k else None) or (spec.prebuilt if spec else None)
    if origin:
        return Checkout.of_prebuilt(origin)
    # a kernel whose metadata is older than checkouts, or a build that failed in its plan:
    # named by what is known of it
    if k is not None:
        what = k.source
    else:
        what = (spec.kernel_src or "the default kernel source") if spec else rep.label
    return Checkout(identity=f"unknown:{_short(what)}", description=what)


# The trees KernelCI knows by name (kernelci-pipeline's config/trees.yaml), by their path on
# git.kernel.org: KCIDB's tree_name is "the widely-recognized name of the sub-tree (fork)"
KERNEL_ORG_TREES = {
    "torvalds/linux": "mainline", "stable/linux": "stable",
    "stable/linux-stable": "stable",  # the stable tree's name before linux.git
    "stable/linux-stable-rc": "stable-rc", "rt/linux-stable-rt": "stable-rt",
    "next/linux-next": "next", "netdev/net-next": "net-next", "tip/tip": "tip",
    "shuah/linux-kselftest": "kselftest", "pci/pci": "linux-pci", "soc/soc": "soc",
    "cip/linux-cip": "cip", "arm64/linux": "arm64", "riscv/linux": "riscv",
}
KERNEL_ORG_HOSTS = ("git.kernel.org", "gitolite.kernel.org", "kernel.googlesource.com")
_GIT_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://)?(?:[^@/]*@)?(?P<host>[^/:@]+)(?::\d+)?[:/]/*"
                      r"(?P<path>.*?)(?:\.git)?/*$", re.I)


def tree_name(url: str) -> str:
    """The name KernelCI knows the tree at `url` by (https, git or ssh; kernel.org or its
    mirrors), "" for any other tree: KCIDB groups checkouts by it, a made-up one misleads."""
    m = _GIT_URL.match(url.strip())
    if m is None:
        return ""
    host, path = m["host"].lower(), m["path"]
    if host == "github.com" and path.lower() == "torvalds/linux":  # Linus's own mirror
        return "mainline"
    found = re.fullmatch(r"pub/scm/linux/kernel/git/([^/]+/[^/]+)", path)
    return KERNEL_ORG_TREES.get(found[1], "") if found and host in KERNEL_ORG_HOSTS else ""


def _no_credentials(url: str) -> str:
    """A URL without the user and password some remotes carry (https://user:token@host/…)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]*@", r"\1", url, flags=re.I)


def _repository(c: Checkout, fields: dict[str, Any], misc: dict[str, Any]) -> None:
    """Where a git checkout's base comes from: the tester's remote (https only, as KCIDB
    takes it), its branch, and the name KernelCI knows the tree by."""
    url = _no_credentials(c.remote_url)
    fields["tree_name"] = tree_name(url)
    if url.startswith("https://"):
        fields["git_repository_url"] = url
        fields["git_repository_branch"] = c.remote_branch
    elif url:
        misc["git_repository"] = url


def source_of(rep: KernelReport) -> Source:
    """The checkout a report's kernel came from, as KCIDB says it."""
    c = checkout_of(rep)
    if c.kind == "prebuilt":
        return Source(c.identity, {"comment": c.description}, {"prebuilt": c.prebuilt})
    fields: dict[str, Any] = {"comment": c.description}
    misc: dict[str, Any] = {"identity": c.identity, "version": c.version}
    if c.kind == "git":
        fields["git_commit_hash"] = c.commit
        fields["git_commit_name"] = c.described
        _repository(c, fields, misc)
        if c.local_changes:
            misc["local_changes"] = c.local_changes
    elif c.kind == "tarball":
        misc["tarball_sha256"] = c.identity.partition(":")[2]
        if c.tarball:
            misc["tarball"] = Path(c.tarball).name
    elif c.kind == "series":
        fields["git_commit_hash"] = c.commit
        fields["git_commit_name"] = c.described
        _repository(c, fields, misc)
        misc["repository"] = c.repository
    kept = {k: v for k, v in fields.items() if v}
    if c.kind == "git" and not c.local_changes:
        kept["patchset_hash"] = ""  # the schema's "no patches were applied"
    elif c.kind == "git" and c.patchset_hash:  # the local changes, as one patch onto HEAD
        kept["patchset_hash"] = c.patchset_hash  # (metadata older than it: not known)
    return Source(c.identity, kept, misc)


def _checkout(src: Source, run: Run) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": _id("checkout", _short(src.identity)), "origin": ORIGIN,
                           **src.fields, "misc": src.misc, "valid": True}
    if run.series and src.identity.startswith("series:"):
        s = run.series
        files = [{"name": re.sub(r"[/\0]", "_", str(name)), "url": url}
                 for name, url in s.get("patch_files", [])]
        if files:
            doc["patchset_files"] = files
        if s.get("patchset_hash"):
            doc["patchset_hash"] = s["patchset_hash"]
        if s.get("cover_message_id"):
            doc["message_id"] = s["cover_message_id"]
        doc["comment"] = s.get("cover_subject") or doc.get("comment", "")
        doc["misc"] = {**doc["misc"], "series": s.get("name", "")}
    return doc


def _config_name(k: Kernel | None, spec: BuildSpec | None) -> str:
    base = (k.extra.get("config_base") if k else None) or (
        Path(spec.config).name if spec and spec.config else "tinyconfig")
    frags = [Path(f).name for f in (spec.fragments if spec else ())]
    arch = get_arch(k.arch if k else spec.arch if spec else "x86_64")
    ours = spec is not None and not spec.prebuilt and spec.config == "tinyconfig"  # we built it
    tiny = [arch.tinyconfig_fragment] if ours and arch.tinyconfig_fragment else []
    return "+".join([base, arch.fragment, *tiny, *frags])


def _build(rep: KernelReport, checkout_id: str, build_id: str, run: Run) -> dict[str, Any]:
    k, spec = rep.kernel, rep.spec
    arch = k.arch if k else (spec.arch if spec else rep.label.split("-")[0])
    doc: dict[str, Any] = {
        "id": build_id, "origin": ORIGIN, "checkout_id": checkout_id, "architecture": arch,
        "config_name": _config_name(k, spec),
        "status": "FAIL" if rep.failed_at is Stage.BUILD else "PASS",
        "misc": {"lto": k.lto if k else (spec.lto if spec else ""), "label": rep.label},
    }
    if k is not None:
        doc["compiler"] = k.compiler
        doc["misc"] |= {"kernel_release": k.release, "linker": k.linker,
                        "build_log": str(k.build_log) if k.build_log else None,
                        "ccache": k.extra.get("ccache"), "source": k.source}
        if k.build_seconds is not None:
            doc["duration"] = float(k.build_seconds)
        if run.artifact_url:
            doc["misc"]["artifacts"] = run.artifact_url
    if rep.failed_at is Stage.BUILD:
        doc["log_excerpt"] = excerpt(rep.error)
    return doc


def _status(rep: KernelReport, infra: str) -> tuple[str, str]:
    """(boot status, why) for a report; the checks that did not run are MISS."""
    if infra:
        return Verdict.ERROR, infra
    if rep.failed_at is Stage.BUILD:
        return MISS, "the kernel did not build"
    if rep.failed_at is Stage.BOOT:
        return Verdict.FAIL, "the kernel did not boot"
    return Verdict.PASS, ""


def _tests(rep: KernelReport, key: str, run: Run, names: Sequence[str], repeat: int = 1
           ) -> list[dict[str, Any]]:
    infra = run.errors.get(rep.label, "")
    boot_status, why = _status(rep, infra)
    arch = rep.kernel.arch if rep.kernel else (rep.spec.arch if rep.spec else "")
    env = {"comment": f"QEMU {get_arch(arch).machine if arch else ''}, "
                      f"{rep.accel or 'no accelerator chosen'}",
           "misc": {"machine": get_arch(arch).machine if arch else "", "accel": rep.accel,
                    "accel_reason": rep.accel_reason}}
    start = _iso(run.started)

    def test(path: str, status: str, comment: str, extra: dict[str, Any]) -> dict[str, Any]:
        checked = run.id if repeat == 1 else f"{run.id}.{repeat}"
        return {"id": _id("test", key, checked, path), "origin": ORIGIN,
                "build_id": _id("build", key), "path": path, "status": status, "comment": comment,
                "environment": env, "start_time": start, **extra}

    boot: dict[str, Any] = {"misc": {"console_log": rep.console_log or None}}
    if rep.boot_seconds is not None:
        boot["duration"] = float(rep.boot_seconds)
    if boot_status in (Verdict.FAIL, Verdict.ERROR):
        boot["log_excerpt"] = excerpt(infra or rep.error)
    found = [test("boot", boot_status, why or "machine booted with the tested kernel", boot)]
    ran = {r.name: r for r in rep.results}
    for name in names:
        r = ran.get(name)
        path = f"ltoboot.{name}"
        if r is None:
            found.append(test(path, MISS, why or "not run", {}))
            continue
        extra: dict[str, Any] = {"misc": {"evidence": r.evidence[-2000:] or None}}
        if r.verdict is Verdict.FAIL:
            extra["log_excerpt"] = excerpt(r.evidence or r.summary)
        found.append(test(path, r.verdict, r.summary, extra))
    return found


def document(reports: Sequence[KernelReport], run: Run, names: Sequence[str]
             ) -> dict[str, Any]:
    """The KCIDB document of one command's reports."""
    checkouts: dict[str, dict[str, Any]] = {}
    builds: dict[str, dict[str, Any]] = {}
    tests: list[dict[str, Any]] = []
    checked: dict[str, int] = {}  # build id -> how many reports of it so far
    for rep in reports:
        src = source_of(rep)
        checkout = _checkout(src, run)
        checkouts.setdefault(checkout["id"], checkout)
        key = rep.kernel.key if rep.kernel else build_key(rep)
        build_id = _id("build", key)
        # one build once (KCIDB merges objects of one id: a second would overwrite the
        # first); a kernel checked twice in one run keeps both runs' tests, apart
        builds.setdefault(build_id, _build(rep, checkout["id"], build_id, run))
        checked[build_id] = checked.get(build_id, 0) + 1
        tests += _tests(rep, key, run, [*names, *(r.name for r in rep.results
                                                  if r.name not in names)], checked[build_id])
    issues, incidents = _findings(run, list(builds.values()), tests)
    doc: dict[str, Any] = _clean({"version": VERSION, "checkouts": list(checkouts.values()),
                                  "builds": list(builds.values()), "tests": tests,
                                  **({"issues": issues, "incidents": incidents} if issues
                                     else {})})
    return doc


ISSUE_VERSION = 1  # an issue is written once, whole: KCIDB triages by the highest version


def _steps(finding: dict[str, Any]) -> list[dict[str, Any]]:
    """The bisect's steps in brief, in the order they ran."""
    n = patch_count(finding)
    return [{"kernel": step_name(int(s["k"]), n), "verdict": s["verdict"],
             "failed": s["failed"], "summary": s["summary"],
             "build_seconds": s["build_seconds"], "built_from": s["built_from"],
             "boot_seconds": s["boot_seconds"]} for s in items(finding, "steps")]


def _issue(f: dict[str, Any], series_identity: str) -> dict[str, Any] | None:
    """The issue a finding names: a culprit patch of the series, or the base failing too
    (the code is the culprit either way: the patch, or the tree it was applied to); None for
    a finding that names nothing (not reproduced, unresolved, not bisected)."""
    checks = sorted(items(f, "checks"))
    misc: dict[str, Any] = {"outcome": f["outcome"], "arch": f["arch"], "checks": checks,
                            "base": f.get("base"), "base_commit": f.get("base_commit"),
                            "base_failed": items(f, "base_failed") or None, "steps": _steps(f),
                            "seconds": f.get("seconds"), "reproduce": f.get("reproduce")}
    patch = culprit_of(f)
    if patch is not None:
        named = patch["message_id"] or f"{patch['number']} {patch['subject']}"
        identity = ["culprit", series_identity, named, checks, f["arch"]]
        misc["patch"] = {k: patch[k] for k in ("number", "subject", "author", "message_id")}
    elif f["outcome"] == "base":
        identity = ["base", str(f.get("base_commit") or f.get("base")), checks, f["arch"]]
        misc["base_fails_too"] = True
    else:
        return None
    return {"id": _id("issue", _short(json.dumps(identity))), "version": ISSUE_VERSION,
            "origin": ORIGIN, "culprit": {"code": True}, "comment": f["said"], "misc": misc}


def _findings(run: Run, builds: list[dict[str, Any]], tests: list[dict[str, Any]]
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The issues the run's findings name, and incidents linking each to the tests that
    failed what was bisected on its kernel (a kernel that did not boot: the boot test);
    each finding's outcome and sentence in those tests' misc (or, when no test failed, as
    for a head that did not build, in its build's)."""
    issues: dict[str, dict[str, Any]] = {}
    incidents: list[dict[str, Any]] = []
    for f in run.findings:
        mine = [b for b in builds if b["misc"].get("label") == f["label"]] or \
            [b for b in builds if b["architecture"] == f["arch"]]
        # a head that did not boot bisects "boot" (culprit.BOOT): the boot test failed
        paths = {c if c == "boot" else f"ltoboot.{c}" for c in items(f, "checks")}
        failed = [t for t in tests if t["build_id"] in {b["id"] for b in mine}
                  and t["path"] in paths and t["status"] == Verdict.FAIL]
        for target in failed or [b for b in mine if b["status"] == "FAIL"]:
            target["misc"] = {**target.get("misc", {}),
                              "bisect": {"outcome": f["outcome"], "said": f["said"]}}
        series_identity = str((run.series or {}).get("patchset_hash") or "") or \
            ",".join(sorted({b["checkout_id"] for b in mine}))
        issue = _issue(f, series_identity)
        if issue is None:
            continue
        issues.setdefault(issue["id"], issue)
        incidents += [{"id": _id("incident", _short(f"{issue['id']} {t['id']}")),
                       "origin": ORIGIN, "issue_id": issue["id"],
                       "issue_version": ISSUE_VERSION, "test_id": t["id"], "present": True}
                      for t in failed]
    return list(issues.values()), incidents


def build_key(rep: KernelReport) -> str:
    """A kernel that did not build has no key of its own: the one its plan gave it, or, when
    the plan itself failed, one named by the spec."""
    return rep.planned_key or _short(repr(rep.spec) if rep.spec else rep.label)


def validate(doc: Mapping[str, Any]) -> None:
    """KernelCI's own schema (kcidb-io), or InvalidDocument saying what it refused."""
    from kcidb_io import schema  # imported when a document is written: it loads jsonschema

    try:
        schema.LATEST.validate(doc)
    except Exception as e:  # jsonschema's ValidationError, and anything the schema raises
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InvalidDocument(f"KCIDB {schema.LATEST} refuses the document: {first}") from e


def write(path: Path, doc: Mapping[str, Any]) -> None:
    """Validate, then write atomically: never a file KCIDB would refuse."""
    validate(doc)
    cache.write_atomic(path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
