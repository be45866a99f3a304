"""KCIDB documents from real runs, each accepted by KernelCI's schema (a document --kcidb
writes has passed kcidb-io's validation): `ltoboot run` twice on the same kernel (one build,
two runs), a SKIP with its reason, `ltoboot matrix`, a broken variant's FAIL with its console
excerpt, and a boot that panics (boot FAIL, the checks MISS). `tested-by --series` (the
series' checkout) is tests/test_tested_by_series.py; `lava run` is tests/test_lava.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.base import cache
from harness.base.errors import KernelFailure
from harness.faces.pytest_plugin.fixtures import Kernels
from harness.guest import boot
from harness.kernel.model import BuildSpec
from harness.kernel.variants import build_variant
from harness.reports import kcidb
from harness.reports.results import KernelReport, Stage
from harness.runs import pipeline

pytestmark = pytest.mark.boot


def _ltoboot(*args: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "harness.faces.cli", *args], capture_output=True,
                       text=True, timeout=900,
                       env={**os.environ, "LTOBOOT_CACHE": str(cache.cache_root())})
    assert r.returncode == 0, r.stdout + r.stderr
    path = Path(args[args.index("--kcidb") + 1])
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def _paths(doc: dict[str, Any]) -> dict[str, str]:
    return {t["path"]: t["status"] for t in doc["tests"]}


def test_run_twice_is_two_runs_of_one_build(kernels: Kernels, tmp_path: Path) -> None:
    k = kernels.get(arch="x86_64")
    argv = ["run", "--arch", "x86_64", "--check", "proc_version", "--check", "kvm_nvhe"]
    one = _ltoboot(*argv, "--kcidb", str(tmp_path / "one.json"))
    two = _ltoboot(*argv, "--kcidb", str(tmp_path / "two.json"))
    assert _paths(one) == {"boot": "PASS", "ltoboot.proc_version": "PASS",
                           "ltoboot.kvm_nvhe": "SKIP"}
    assert one["builds"] == two["builds"] and one["builds"][0]["id"] == f"ltoboot:build:{k.key}"
    assert one["checkouts"][0]["misc"]["tarball_sha256"]
    assert not {t["id"] for t in one["tests"]} & {t["id"] for t in two["tests"]}
    skip = next(t for t in one["tests"] if t["path"] == "ltoboot.kvm_nvhe")
    assert "applies to arm64 only" in skip["comment"]


def test_matrix_writes_one_document(kernels: Kernels, tmp_path: Path) -> None:
    kernels.get(arch="x86_64")
    doc = _ltoboot("matrix", "--arch", "x86_64", "--check", "proc_version",
                   "--kcidb", str(tmp_path / "m.json"))
    assert _paths(doc) == {"boot": "PASS", "ltoboot.proc_version": "PASS"}


def _run(run_id: str) -> kcidb.Run:
    return kcidb.Run(id=run_id, started=datetime.now(UTC))


def test_a_broken_variant_fails_with_its_console_excerpt(kernels: Kernels) -> None:
    base = kernels.get(arch="x86_64")
    broken = build_variant(base, "versions-unchecked")
    rep = pipeline.check_obtained(KernelReport(label=broken.label, kernel=broken,
                                               spec=BuildSpec(arch="x86_64")),
                                  BuildSpec(arch="x86_64"), "auto", ["modversions"])
    doc = kcidb.document([rep], _run("variant"), ["modversions"])
    kcidb.validate(doc)
    failed = next(t for t in doc["tests"] if t["path"] == "ltoboot.modversions")
    assert failed["status"] == "FAIL" and failed["log_excerpt"]
    assert "wrong CRC" in failed["comment"]
    assert doc["builds"][0]["id"] == f"ltoboot:build:{broken.key}"


def test_a_boot_that_panics_is_boot_fail_and_checks_miss(kernels: Kernels) -> None:
    k = kernels.get(arch="x86_64")
    rep = KernelReport(label=k.label, kernel=k, spec=BuildSpec(arch="x86_64"))
    with pytest.raises(KernelFailure) as e:
        boot.boot(boot.BootRequest(k, extra_cmdline=["rdinit=/nonexistent", "init=/nonexistent"],
                                   label=f"{k.label}-kcidb-panic")).close()
    rep.fail(Stage.BOOT, e.value)
    doc = kcidb.document([rep], _run("panic"), ["proc_version", "modversions"])
    kcidb.validate(doc)
    assert _paths(doc) == {"boot": "FAIL", "ltoboot.proc_version": "MISS",
                           "ltoboot.modversions": "MISS"}
    assert "Kernel panic" in doc["tests"][0]["log_excerpt"]
